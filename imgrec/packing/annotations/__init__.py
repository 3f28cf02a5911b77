"""Annotations beside the images (COCO JSON, Pascal VOC XML, YOLO txt, per-image
``metadata.jsonl`` / ``metadata.csv``): each reader gives an ``Annotated`` per image,
joined to the walk's items by their path relative to SRC.

A reader's boxes are in pixels of the image as it is displayed (EXIF orientation applied),
in continuous coordinates: (0, 0) is the top-left corner of the top-left pixel and
(width, height) the bottom-right corner of the bottom-right one. Each reader converts its
format's own convention into that (VOC's 1-based inclusive corners), except YOLO's,
whose files do not state the image's size: its boxes are corners as fractions of the width
and height (``Annotated.normalized``). ``encode`` moves them with the pixels into the stored record.

Keypoints (COCO's) are in the same continuous coordinates: a point at COCO's integer pixel
index (x, y) is at (x + 0.5, y + 0.5), the centre of that pixel (see ``coco_checks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A per-image field's value: one type per column (see ``COLUMN_TYPES``).
Value = int | float | str | tuple[float, ...]
COLUMN_TYPES = ("int", "float", "str", "floats")  # floats: a list of numbers
# The largest class id an object may have: readers take the ids as int32, -1 the padding
MAX_CLASS_ID = 2**31 - 1


@dataclass(frozen=True)
class PixelBox:
    """One object as an annotation file gives it (see the module's coordinates)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: int  # the dataset's own class id
    ident: str  # the annotation's id (COCO) or place (file:line, object n) for messages
    area: float | None = None  # in pixels, as the file gives it (COCO); None: the box's
    crowd: bool = False
    difficult: bool = False
    truncated: bool = False
    text: str = ""  # the class's name (the join sets it from the source's classes)
    # The object's keypoints, flat (x, y, v) per point in the module's coordinates, v as
    # COCO's (0 not labelled, 1 labelled but not visible, 2 visible); empty: none given
    points: tuple[float, ...] = ()
    # The object's segmentation, as COCO's JSON gives it (polygons, or a run-length mask in
    # either form), in the displayed frame; None: the file gives none. Kept as text, so
    # that carrying it through spools and workers costs one string (``instance_masks``).
    shape: str | None = None

    def named(self, text: str) -> PixelBox:
        """This box with its class's name (``dataclasses.replace`` costs 15 µs a box)."""
        return PixelBox(self.x0, self.y0, self.x1, self.y1, self.label, self.ident,
                        self.area, self.crowd, self.difficult, self.truncated, text,
                        self.points, self.shape)  # fmt: skip


@dataclass(frozen=True)
class Annotated:
    """What the annotation files say of one image.

    ``problem``: why this image's annotations cannot be used (a box with NaN, an unknown
    class id, ...), naming the file and the annotation id or line: the image is skipped with
    it (``--on-error fail`` stops there). Problems that need the image's size (a box outside
    it) are found when it is loaded (``encode``)."""

    boxes: tuple[PixelBox, ...] = ()
    width: int | None = None  # the size the annotation file states, if it does
    height: int | None = None
    source_id: str = ""  # COCO's image id; else empty (the record's filename then serves)
    where: str = ""  # the annotation file, for messages
    fields: tuple[tuple[str, Value], ...] = ()  # per-image columns, in column order
    problem: str | None = None
    # The boxes are fractions of the displayed width and height (0..1), not pixels: YOLO's
    # files do not state the image's size, so its reader cannot give pixels.
    normalized: bool = False
    # A box source describes the dataset: the record carries the object keys (empty for an
    # image without objects). The join sets it; fields alone give none.
    boxed: bool = False
    # The image's semantic mask (--masks): its file, with the size and modification time
    # it had when the pack began (a changed mask refuses a --resume)
    mask: tuple[str, int, int] | None = None
    # The (normalized) boxes are on the pixels as stored, before their EXIF orientation, as
    # TensorFlow decodes them (``imgrec convert`` of TF Object Detection API records): they
    # are turned upright with the image.
    unoriented: bool = False
    # A dataset with keypoints: how many each object has in the record (K, the most any
    # class names; 0: the dataset has none), and each class's keypoint names (by class id,
    # those of this image's objects), for the record's keypoint/text.
    keypoints: int = 0
    keypoint_names: tuple[tuple[int, tuple[str, ...]], ...] = ()
    # The box source gives segmentations: every object of the dataset gets an instance mask
    # (``instance_masks``), the record ``image/object/mask`` (empty without objects).
    masked: bool = False

    def to_json(self) -> list[Any]:
        """A JSON-able form (``from_json`` reads it back): items carry it through spools,
        journals and Beam."""
        # Keypoints only where there are some: a dataset without them keeps the form (and
        # so the digest a --resume compares) it had before they were packed.
        boxes = [
            [b.x0, b.y0, b.x1, b.y1, b.label, b.ident, b.area, b.crowd, b.difficult,
             b.truncated, b.text, *_box_extra(b)]
            for b in self.boxes
        ]  # fmt: skip
        fields = [[k, list(v) if isinstance(v, tuple) else v] for k, v in self.fields]
        mask = None if self.mask is None else list(self.mask)
        out: list[Any] = [boxes, self.width, self.height, self.source_id, self.where, fields,
                          self.problem, self.normalized, self.boxed, mask]  # fmt: skip
        # What only some datasets have, only when they have it: the annotations' digest
        # (which --resume compares) of the others stays as it was
        extra: dict[str, Any] = {}
        if self.unoriented:
            extra["unoriented"] = True
        if self.keypoints:
            extra["keypoints"] = self.keypoints
            extra["keypoint_names"] = [[label, list(n)] for label, n in self.keypoint_names]
        if self.masked:
            extra["masked"] = True
        return [*out, extra] if extra else out

    @classmethod
    def from_json(cls, data: list[Any]) -> Annotated:
        boxes, width, height, source_id, where, fields, problem, normalized, boxed, mask = data[:10]
        extra: dict[str, Any] = data[10] if len(data) > 10 else {}
        return cls(
            tuple(_box(b) for b in boxes),
            width,
            height,
            source_id,
            where,
            tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in fields),
            problem,
            normalized,
            boxed,
            None if mask is None else (mask[0], mask[1], mask[2]),
            extra.get("unoriented", False),
            extra.get("keypoints", 0),
            tuple((label, tuple(n)) for label, n in extra.get("keypoint_names", ())),
            extra.get("masked", False),
        )


def _box_extra(b: PixelBox) -> list[dict[str, Any]]:
    """A box's keypoints and segmentation, for ``to_json``: nothing when it has neither."""
    extra: dict[str, Any] = {}
    if b.points:
        extra["points"] = list(b.points)
    if b.shape is not None:
        extra["shape"] = b.shape
    return [extra] if extra else []


def _box(b: list[Any]) -> PixelBox:
    """A ``PixelBox`` from its ``to_json`` list (its fields by position)."""
    extra: dict[str, Any] = b[11] if len(b) > 11 else {}
    return PixelBox(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
                    tuple(extra.get("points", ())), extra.get("shape"))  # fmt: skip


@dataclass
class Source:
    """What a reader found: the classes (id → name, in id order), the per-image columns
        (name → type), and ``lookup(rel)`` giving an image's annotations (None: the files say
        nothing of it; such an image is kept as a negative, without objects). ``listed`` is
        every image path the annotation files name (relative to SRC), for the check that each
        one is in SRC. ``close`` frees what the reader holds (an index file). ``warnings``: one
    line each, for what the files hold that imgrec does not pack (yet), with a count."""

    kind: str  # coco | voc | yolo | fields | masks
    where: str  # the annotation file or folder
    classes: dict[int, str]
    columns: dict[str, str] = field(default_factory=dict)
    lookup: Callable[[str], Annotated | None] = lambda rel: None
    listed: Callable[[], Any] = lambda: ()
    # The files (one per image: VOC's XMLs, YOLO's txts) no lookup matched, once every image
    # was looked up: each one's image is not in SRC (a typo in its name loses its objects)
    unmatched: Callable[[], Any] = lambda: ()
    close: Callable[[], None] = lambda: None
    warnings: list[str] = field(default_factory=list)  # what the files hold that is not packed
    # The classes that name keypoints (COCO's categories' "keypoints"): id -> names
    keypoints: dict[int, tuple[str, ...]] = field(default_factory=dict)
    masked: bool = False  # its boxes come with segmentations (``Annotated.masked``)
