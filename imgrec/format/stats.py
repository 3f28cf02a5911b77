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
    # Records packed with annotations (their object keys, possibly empty), their objects by
    # class, and the boxes' sizes in stored pixels ([min, max]); all zero/empty otherwise.
    annotated: int = 0
    objects: Counter[str] = field(default_factory=Counter)
    without_objects: int = 0
    box_width: list[float] = field(default_factory=list)
    box_height: list[float] = field(default_factory=list)
    masked: int = 0  # records with a semantic mask, and per class how many hold it
    # Keypoints (records carrying their keys): labelled points (visibility 1 or 2), visible (2)
    keypointed: int = 0
    keypoints_labelled: int = 0
    keypoints_visible: int = 0
    mask_classes: Counter[str] = field(default_factory=Counter)
    # The sources' ICC profiles by class (images.colour.KINDS); records without one: none
    profiles: Counter[str] = field(default_factory=Counter)

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
            _widen(bounds, v)
        if r.objects is not None:
            self._add_objects(r)
        if r.profile:
            self.profiles[r.profile] += 1
        if r.mask is not None or r.mask_classes:
            self.masked += 1
            self.mask_classes.update(str(c) for c in r.mask_classes)

    def _add_objects(self, r: Record) -> None:
        o = r.objects
        assert o is not None
        self.annotated += 1
        self.without_objects += not o.xmin
        for i, label in enumerate(o.label):
            self.objects[o.text[i] if i < len(o.text) and o.text[i] else str(label)] += 1
        for x0, x1 in zip(o.xmin, o.xmax, strict=False):
            _widen(self.box_width, round((x1 - x0) * r.width, 3))
        for y0, y1 in zip(o.ymin, o.ymax, strict=False):
            _widen(self.box_height, round((y1 - y0) * r.height, 3))
        if o.keypointed:
            self.keypointed += 1
            self.keypoints_labelled += sum(v > 0 for v in o.keypoint_visibility)
            self.keypoints_visible += sum(v == 2 for v in o.keypoint_visibility)

    def to_dict(self) -> dict[str, Any]:
        d = self._image_dict()
        if self.annotated:
            d["objects"] = {
                "records": self.annotated,
                "objects": sum(self.objects.values()),
                "by_class": dict(sorted(self.objects.items())),
                "without_objects": self.without_objects,
                "box_width": self.box_width,
                "box_height": self.box_height,
            }
            if self.keypointed:  # (absent without keypoints: such manifests stay as they were)
                d["objects"]["keypoints"] = {
                    "records": self.keypointed,
                    "labelled": self.keypoints_labelled,
                    "visible": self.keypoints_visible,
                }
        if self.masked:
            classes = sorted(self.mask_classes.items(), key=lambda kv: int(kv[0]))
            d["masks"] = {"records": self.masked, "images_by_class": dict(classes)}
        if self.profiles:  # (absent without any: such manifests stay as they were)
            none = self.records - sum(self.profiles.values())
            d["profiles"] = dict(sorted(self.profiles.items())) | ({"none": none} if none else {})
        return d

    def _image_dict(self) -> dict[str, Any]:
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
            **_objects_from(d.get("objects")),
            masked=d.get("masks", {}).get("records", 0),
            mask_classes=Counter(d.get("masks", {}).get("images_by_class", {})),
            profiles=Counter({k: v for k, v in d.get("profiles", {}).items() if k != "none"}),
        )


def _objects_from(d: dict[str, Any] | None) -> dict[str, Any]:
    if not d:
        return {}
    return {
        "annotated": d["records"],
        "objects": Counter(d["by_class"]),
        "without_objects": d["without_objects"],
        "box_width": list(d["box_width"]),
        "box_height": list(d["box_height"]),
        "keypointed": d.get("keypoints", {}).get("records", 0),
        "keypoints_labelled": d.get("keypoints", {}).get("labelled", 0),
        "keypoints_visible": d.get("keypoints", {}).get("visible", 0),
    }


def _widen(bounds: list[Any], v: float) -> None:
    """Make ``bounds`` ([min, max], or empty) take in ``v``."""
    bounds[:] = [min(bounds[0], v), max(bounds[1], v)] if bounds else [v, v]


def merge_stats(a: Stats, b: Stats) -> None:
    """Add ``b``'s numbers into ``a``."""
    a.records += b.records
    a.stored_bytes += b.stored_bytes
    a.dense_bytes += b.dense_bytes
    a.dense_uint8_bytes += b.dense_uint8_bytes
    a.oriented += b.oriented
    for name in ("formats", "dtypes", "channels", "labels"):
        getattr(a, name).update(getattr(b, name))
    a.annotated += b.annotated
    a.without_objects += b.without_objects
    a.objects.update(b.objects)
    a.masked += b.masked
    a.keypointed += b.keypointed
    a.keypoints_labelled += b.keypoints_labelled
    a.keypoints_visible += b.keypoints_visible
    a.mask_classes.update(b.mask_classes)
    a.profiles.update(b.profiles)
    pairs: list[tuple[list[Any], list[Any]]] = [
        (a.height, b.height), (a.width, b.width), (a.box_width, b.box_width),
        (a.box_height, b.box_height),
    ]  # fmt: skip
    for ab, bb in pairs:
        if bb:
            ab[:] = [min(ab[0], bb[0]), max(ab[1], bb[1])] if ab else list(bb)
