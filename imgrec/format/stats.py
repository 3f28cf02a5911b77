"""Aggregate numbers over records (counts, labels, formats, shapes, sizes): gathered per
shard while packing, summed into the manifest, and recomputed by ``inspect`` from records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .schema import Record

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
