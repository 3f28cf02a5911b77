"""The objects of TF Object Detection API records, as its ``create_coco_tf_record.py`` and
``create_pascal_tf_record.py`` write them: ``image/object/bbox/{xmin,ymin,xmax,ymax}``
(fractions 0..1 of the image's width and height), ``image/object/class/label`` (the
dataset's class ids) and ``/class/text`` (their names), and optionally ``image/object/area``
(pixels), ``is_crowd``, ``difficult``, ``truncated`` and ``image/source_id``.

The keys are found by those names (``format/schema.py``'s, which imgrec writes too) in the
first record. A record's objects become its item's ``Annotated``: normalized boxes on the
pixels as TensorFlow decodes them (its EXIF orientation not applied: ``unoriented``), which
pack turns upright, resizes and stores as it does YOLO's. A record whose objects cannot be
used is skipped with the reason (``Annotated.problem``, naming the file and the record); the
classes are the id -> name pairs the records give, and two names for one id (or two ids for
one name) stop the run: the classes would be ambiguous.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from ...core.errors import InputError
from ...format import schema
from ...format.manifest import AnnotationInfo
from ..annotations import MAX_CLASS_ID, Annotated, PixelBox
from ..discover import Item

# Writers divide pixels by the size in float32 (OD API's dataset_util), so a box touching an
# edge can come out a hair past it: that much is taken as the edge itself.
EDGE_SLACK = 1e-4
CORNERS = (schema.XMIN, schema.YMIN, schema.XMAX, schema.YMAX)
# Lists a record may leave out (or leave empty); the others every object has.
OPTIONAL = (schema.OBJECT_TEXT, schema.AREA, schema.CROWD, schema.DIFFICULT, schema.TRUNCATED)
KINDS = {schema.OBJECT_LABEL: "int64_list", schema.CROWD: "int64_list",
         schema.DIFFICULT: "int64_list", schema.TRUNCATED: "int64_list",
         schema.OBJECT_TEXT: "bytes_list", schema.AREA: "float_list",
         **{key: "float_list" for key in CORNERS}}  # fmt: skip


def detected(example: Any) -> bool:
    """Whether the records carry OD API objects (the first record says for all)."""
    return schema.XMIN in example.features.feature


def not_kept(example: Any) -> list[str]:
    """The first record's object keys that convert does not keep (instance masks, VOC's
    ``view``), for the manifest's warnings."""
    return sorted(
        k for k in example.features.feature if k.startswith("image/object/") and k not in KINDS
    )


class Classes:
    """The classes the records name: each id's name, checked to be one name per id and one
    id per name across every record."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.first: dict[int, int] = {}  # the record that named the id first
        self.first_text: dict[str, int] = {}

    def add(self, label: int, text: str, path: str, n: int) -> None:
        self.names.setdefault(label, "")
        self.first.setdefault(label, n)
        if not text:
            return
        named = self.names[label]
        if named and named != text:
            raise InputError(
                f"record {n}: class id {label} is named {text!r}, but {named!r} in record"
                f" {self.first_text[named]}; each class id needs one name",
                path,
            )
        if self.ids.get(text, label) != label:
            raise InputError(
                f"record {n}: class {text!r} has id {label}, but {self.ids[text]} in record"
                f" {self.first_text[text]}; each class name needs one id",
                path,
            )
        self.names[label] = text
        self.ids[text] = label
        self.first_text.setdefault(text, n)

    def named(self) -> dict[int, str]:
        """id -> name in id order (an id no record names is named by its number)."""
        return {i: self.names[i] or str(i) for i in sorted(self.names)}


def _values(example: Any, key: str) -> list[Any]:
    feature = example.features.feature
    if key not in feature:
        return []
    return list(getattr(feature[key], KINDS[key]).value)


def annotated(example: Any, path: str, n: int, classes: Classes) -> Annotated:
    """Record ``n`` of ``path``'s objects (no objects: a negative), or why they cannot be
    used (``problem``); their classes added to ``classes``."""
    lists = {key: _values(example, key) for key in KINDS}
    where = f"{path}, record {n}"
    ids = _values_bytes(example, schema.SOURCE_ID)
    source_id = ids[0].decode("utf-8", "replace") if ids else ""
    count = len(lists[schema.XMIN])
    wrong = {k: len(v) for k, v in lists.items() if len(v) != count and (v or k not in OPTIONAL)}
    if wrong:
        listed = ", ".join(f"{k} {c}" for k, c in wrong.items())
        return _unusable(
            path, f"{where}: the object lists differ in length ({schema.XMIN} {count}, {listed})"
        )
    boxes: list[PixelBox] = []
    for i in range(count):
        corners = [float(lists[key][i]) for key in CORNERS]
        why = _box_problem(corners) or _label_problem(lists[schema.OBJECT_LABEL][i])
        if why is not None:
            return _unusable(path, f"{where}: object {i}: {why}")
        boxes.append(_box(lists, i, [min(max(v, 0.0), 1.0) for v in corners]))
    for box in boxes:
        classes.add(box.label, box.text, path, n)
    return Annotated(tuple(boxes), source_id=source_id, where=path, normalized=True,
                     boxed=True, unoriented=True)  # fmt: skip


def _box(lists: dict[str, list[Any]], i: int, corners: list[float]) -> PixelBox:
    """Object ``i``, its corners clipped to the image."""
    texts, areas = lists[schema.OBJECT_TEXT], lists[schema.AREA]
    x0, y0, x1, y1 = corners
    return PixelBox(
        x0, y0, x1, y1,
        int(lists[schema.OBJECT_LABEL][i]),
        f"object {i}",
        float(areas[i]) if areas else None,
        _flag(lists, schema.CROWD, i),
        _flag(lists, schema.DIFFICULT, i),
        _flag(lists, schema.TRUNCATED, i),
        texts[i].decode("utf-8", "replace") if texts else "",
    )  # fmt: skip


def _values_bytes(example: Any, key: str) -> list[bytes]:
    feature = example.features.feature
    return list(feature[key].bytes_list.value) if key in feature else []


def _flag(lists: dict[str, list[Any]], key: str, i: int) -> bool:
    return bool(lists[key][i]) if lists[key] else False


def _label_problem(label: int) -> str | None:
    if 0 <= label <= MAX_CLASS_ID:
        return None
    return (
        f"class id {label} is outside 0..{MAX_CLASS_ID} (readers take ids as int32, -1 the padding)"
    )


def _box_problem(corners: Sequence[float]) -> str | None:
    x0, y0, x1, y1 = corners
    if not all(math.isfinite(v) for v in corners):
        return "the box has a number that is not finite"
    if not all(-EDGE_SLACK <= v <= 1 + EDGE_SLACK for v in corners):
        return (
            f"the box (x {x0:g}..{x1:g}, y {y0:g}..{y1:g}) is outside the image (the OD API's"
            " boxes are fractions 0..1 of its width and height)"
        )
    if x1 <= x0 or y1 <= y0:
        return f"the box (x {x0:g}..{x1:g}, y {y0:g}..{y1:g}) has no area"
    return None


def _unusable(path: str, problem: str) -> Annotated:
    return Annotated(where=path, problem=problem, normalized=True, boxed=True, unoriented=True)


def named(found: Annotated, classes: dict[int, str]) -> Annotated:
    """``found`` with each box named by its class (a record may leave its texts out)."""
    if not found.boxes:
        return found
    boxes = tuple(b.named(classes.get(b.label, str(b.label))) for b in found.boxes)
    return Annotated(boxes, found.width, found.height, found.source_id, found.where,
                     found.fields, found.problem, found.normalized, found.boxed, found.mask,
                     found.unoriented)  # fmt: skip


def info(
    src: str, classes: dict[int, str], items: Iterable[Item], warnings: list[str]
) -> AnnotationInfo:
    """What the manifest says of the converted objects; the digest as ``join.attach``
    computes a pack's (what --resume compares)."""
    digest = hashlib.sha256()
    for item in items:
        assert item.annotated is not None
        digest.update(json.dumps([item.rel, item.annotated.to_json()]).encode() + b"\n")
    return AnnotationInfo([("tfrecord", src)], classes, {}, warnings, digest.hexdigest())
