"""What is in a set of shards: counts, labels, shapes and sizes. No TensorFlow needed.

A dataset folder with a manifest is answered from the manifest (stats gathered while
packing) and the shard files' sizes; anything else is read record by record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..core import storage
from ..core.errors import ShardError
from ..format.framing import read_records
from ..format.schema import Record, SchemaError, parse
from ..format.stats import Stats, merge_stats
from ..images.pillow import identify
from ..reading.paths import Paths, as_list, open_dataset, resolve


@dataclass
class Summary:
    stats: Stats
    shards: list[dict[str, Any]]  # {path, records, bytes}
    source: str  # "manifest" or "records"
    label_names: list[str] | None = None
    problems: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # name -> records
    split_labels: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> per class
    warnings: list[str] = field(default_factory=list)  # splits far from their ratios
    annotations: dict[str, Any] | None = None  # packed with annotations: what the manifest says

    @property
    def dtypes(self) -> list[str]:
        return sorted(self.stats.dtypes)

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        labels = dict(s.labels)
        if self.label_names is not None:  # every class, in label order, zeros included
            labels = {n: s.labels.get(n, 0) for n in self.label_names}
            labels.update({k: v for k, v in s.labels.items() if k not in labels})
        return {
            "records": s.records,
            "shards": self.shards,
            "bytes": sum(sh["bytes"] for sh in self.shards),
            "labels": labels,
            "formats": dict(sorted(s.formats.items())),
            "dtypes": dict(sorted(s.dtypes.items())),
            "channels": dict(sorted(s.channels.items())),
            "height": {"min": s.height[0], "max": s.height[1]} if s.height else None,
            "width": {"min": s.width[0], "max": s.width[1]} if s.width else None,
            "avg_stored_bytes": round(s.stored_bytes / s.records) if s.records else 0,
            "dense_uint8_bytes": s.dense_uint8_bytes,
            "stored_to_dense_uint8": (
                round(s.stored_bytes / s.dense_uint8_bytes, 4) if s.dense_uint8_bytes else None
            ),
            "splits": self.splits,
            "split_labels": self.split_labels,
            "warnings": self.warnings,
            "source": self.source,
            "problems": self.problems,
            **self._annotations(),
        }

    def _annotations(self) -> dict[str, Any]:
        """``objects`` (counts, by class, box sizes in stored pixels), ``masks`` (images
        holding each class) and ``annotations`` (files, classes, columns): only for
        datasets that have them."""
        out: dict[str, Any] = {}
        counted = self.stats.to_dict()
        for key in ("objects", "masks", "profiles"):
            if key in counted:
                out[key] = counted[key]
        if self.annotations is not None:
            out["annotations"] = self.annotations
        return out


def summarize(paths: Paths) -> Summary:
    """Summarise datasets (folders with a manifest) and/or loose shard files."""
    stats = Stats()
    shards: list[dict[str, Any]] = []
    problems: list[str] = []
    label_names: list[str] | None = None
    splits: dict[str, int] = {}
    split_labels: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    annotations: dict[str, Any] | None = None
    from_manifest = True
    for p in as_list(paths):
        where, m = open_dataset(p)
        if m is not None and m.stats is not None:
            merge_stats(stats, m.stats)
            for name, split in (m.splits or {}).items():
                splits[name] = splits.get(name, 0) + split.records
                into = split_labels.setdefault(name, {})
                for label, n in split.labels.items():
                    into[label] = into.get(label, 0) + n
            warnings += m.split_warnings()
            if m.annotations is not None:
                annotations = _merged_annotations(annotations, m.annotations.to_dict())
            label_names = (label_names or []) + [
                n for n in m.labels if n not in (label_names or [])
            ]
            for s in m.shards:
                path = storage.join(where, s.file)
                shards.append({"path": str(path), "records": s.records, "bytes": s.bytes})
                size = storage.size(path)
                if size is None:
                    problems.append(f"{path}: listed in the manifest but missing")
                elif size != s.bytes:
                    problems.append(f"{path}: {size} bytes, the manifest says {s.bytes}")
            continue
        from_manifest = False
        for shard in resolve(p):
            n = 0
            for index, (offset, data) in enumerate(read_records(shard)):
                try:
                    rec = parse(data, strict=False)
                except SchemaError as e:
                    raise ShardError(str(e), str(shard), index, offset) from None
                stats.add(_with_size(rec))
                n += 1
            shards.append({"path": str(shard), "records": n, "bytes": storage.size(shard) or 0})
    source = "manifest" if from_manifest else "records"
    order = label_names or []
    for name, counts in split_labels.items():  # every class, in label order
        rest = {k: v for k, v in counts.items() if k not in order}
        split_labels[name] = {k: counts.get(k, 0) for k in order} | rest
    return Summary(stats, shards, source, label_names, problems, splits, split_labels, warnings,
                   annotations)  # fmt: skip


def _merged_annotations(into: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """The annotations of several datasets read together: their files, classes, columns and
    warnings, together."""
    if into is None:
        return more
    return {
        "sources": into["sources"] + [s for s in more["sources"] if s not in into["sources"]],
        "classes": {**into["classes"], **more["classes"]},
        "columns": {**into["columns"], **more["columns"]},
        "warnings": into["warnings"] + more["warnings"],
    }


def _with_size(rec: Record) -> Record:
    """Fill in height/width/channels from the image header for records that lack them."""
    if rec.height and rec.width and rec.channels or rec.format == "raw":
        return rec
    im = identify(rec.data)
    if im is None:
        return rec
    channels = rec.channels or len(im.getbands())
    return replace(rec, height=im.height, width=im.width, channels=channels)
