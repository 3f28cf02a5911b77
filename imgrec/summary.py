"""What is in a set of shards: counts, labels, shapes and sizes. No TensorFlow needed.

A dataset folder with a manifest is answered from the manifest (stats gathered while
packing) and the shard files' sizes; anything else is read record by record.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import manifest as manifest_io
from .errors import ShardError
from .schema import Record, SchemaError, parse
from .tfrecord import read_records

UNLABELLED = "(unlabelled)"


@dataclass
class Stats:
    """Aggregates over records; the same numbers whether gathered while packing or reading."""

    records: int = 0
    stored_bytes: int = 0
    dense_bytes: int = 0  # decoded size at the stored dtype
    dense_uint8_bytes: int = 0  # decoded size if every sample were one byte
    formats: Counter[str] = field(default_factory=Counter)
    dtypes: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    oriented: int = 0  # records whose EXIF orientation the reader must apply
    height: list[int] = field(default_factory=list)  # [min, max]
    width: list[int] = field(default_factory=list)

    def add(self, r: Record, stored: int | None = None) -> None:
        """Count a record; ``stored`` is its payload size when ``r.data`` was left out."""
        self.records += 1
        self.stored_bytes += len(r.data) if stored is None else stored
        self.dense_bytes += r.dense_bytes
        self.dense_uint8_bytes += r.height * r.width * r.channels
        self.formats[r.format] += 1
        self.dtypes[r.dtype] += 1
        self.channels[str(r.channels)] += 1
        self.oriented += r.orientation != 1
        self.labels[r.text or (str(r.label) if r.label >= 0 else UNLABELLED)] += 1
        for bounds, v in ((self.height, r.height), (self.width, r.width)):
            if bounds:
                bounds[:] = [min(bounds[0], v), max(bounds[1], v)]
            else:
                bounds[:] = [v, v]

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "stored_bytes": self.stored_bytes,
            "dense_bytes": self.dense_bytes,
            "dense_uint8_bytes": self.dense_uint8_bytes,
            "formats": dict(sorted(self.formats.items())),
            "dtypes": dict(sorted(self.dtypes.items())),
            "channels": dict(sorted(self.channels.items())),
            "labels": dict(self.labels),
            "oriented": self.oriented,
            "height": self.height,
            "width": self.width,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        return cls(
            records=d["records"],
            stored_bytes=d["stored_bytes"],
            dense_bytes=d["dense_bytes"],
            dense_uint8_bytes=d["dense_uint8_bytes"],
            formats=Counter(d["formats"]),
            dtypes=Counter(d["dtypes"]),
            channels=Counter(d["channels"]),
            labels=Counter(d["labels"]),
            oriented=d.get("oriented", 0),
            height=list(d["height"]),
            width=list(d["width"]),
        )


@dataclass
class Summary:
    stats: Stats
    shards: list[dict[str, Any]]  # {path, records, bytes}
    source: str  # "manifest" or "records"
    label_names: list[str] | None = None
    problems: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # name -> records

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
            "source": self.source,
            "problems": self.problems,
        }


def summarize(paths: list[str]) -> Summary:
    """Summarise datasets (folders with a manifest) and/or loose shard files."""
    stats = Stats()
    shards: list[dict[str, Any]] = []
    problems: list[str] = []
    label_names: list[str] | None = None
    splits: dict[str, int] = {}
    from_manifest = True
    for p in paths:
        folder = Path(p)
        m = manifest_io.read(folder) if folder.is_dir() else None
        if m is not None and "stats" in m:
            merge_stats(stats, Stats.from_dict(m["stats"]))
            for name, s in m.get("splits", {}).items():
                splits[name] = splits.get(name, 0) + int(s["records"])
            label_names = (label_names or []) + [
                n for n in m.get("labels", []) if n not in (label_names or [])
            ]
            for s in m["shards"]:
                path = folder / s["file"]
                shards.append({"path": str(path), "records": s["records"], "bytes": s["bytes"]})
                if not path.is_file():
                    problems.append(f"{path}: listed in the manifest but missing")
                elif path.stat().st_size != s["bytes"]:
                    problems.append(
                        f"{path}: {path.stat().st_size} bytes, the manifest says {s['bytes']}"
                    )
            continue
        from_manifest = False
        for shard in manifest_io.resolve(p):
            n = 0
            for index, (offset, data) in enumerate(read_records(shard)):
                try:
                    rec = parse(data, strict=False)
                except SchemaError as e:
                    raise ShardError(str(e), str(shard), index, offset) from None
                stats.add(_with_size(rec))
                n += 1
            shards.append({"path": str(shard), "records": n, "bytes": shard.stat().st_size})
    source = "manifest" if from_manifest else "records"
    return Summary(stats, shards, source, label_names, problems, splits)


def merge_stats(a: Stats, b: Stats) -> None:
    """Add ``b``'s numbers into ``a``."""
    a.records += b.records
    a.stored_bytes += b.stored_bytes
    a.dense_bytes += b.dense_bytes
    a.dense_uint8_bytes += b.dense_uint8_bytes
    a.oriented += b.oriented
    for name in ("formats", "dtypes", "channels", "labels"):
        getattr(a, name).update(getattr(b, name))
    for ab, bb in ((a.height, b.height), (a.width, b.width)):
        if bb:
            ab[:] = [min(ab[0], bb[0]), max(ab[1], bb[1])] if ab else list(bb)


def _with_size(rec: Record) -> Record:
    """Fill in height/width/channels from the image header for records that lack them."""
    if rec.height and rec.width and rec.channels or rec.format == "raw":
        return rec
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(rec.data))
            channels = rec.channels or len(im.getbands())
            return Record(
                **{**rec.__dict__, "height": im.height, "width": im.width, "channels": channels}
            )
    except Exception:
        return rec
