"""An image's annotations placed on its stored pixels: checked against the image as
loaded (as displayed: its EXIF orientation applied, as it is stored), moved with it through
a resize (``images/geometry.py``), and turned into the record's objects and fields
(``format/schema.py``)."""

from __future__ import annotations

import math

from ...format.schema import Field, Objects
from ...images import geometry
from ...images.loading import ImageOptions, Loaded
from . import Annotated, PixelBox

# Boxes may pass the image's edge by this much (pixels) and are clipped to it: tools write
# x + w in floats (COCO's 640.01 for a 640-pixel image). Beyond it, a box is outside.
EDGE_SLACK = 0.5


class Misplaced(Exception):
    """Annotations that do not fit the loaded image: the image is skipped with this."""


def place(
    annotated: Annotated, loaded: Loaded, opts: ImageOptions
) -> tuple[Objects | None, tuple[Field, ...]]:
    """The record's objects (None: no box source describes the dataset) and fields for
    ``loaded``, the stored form of the image that ``annotated`` describes. Raises
    ``Misplaced`` for a problem the reader found or one that only the image's size shows."""
    import numpy as np

    if annotated.problem is not None:
        raise Misplaced(annotated.problem)
    fields = tuple((name, _kind(value), value) for name, value in annotated.fields)
    if not annotated.boxed:
        return None, fields
    height, width = loaded.shown or (loaded.height, loaded.width)  # as displayed
    _check_size(annotated, height, width, loaded.applied)
    boxes = annotated.boxes
    corners = np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float64).reshape(-1, 4)
    if not annotated.normalized:
        for box in boxes:
            _check_inside(annotated, box, height, width)
        corners /= np.array([width, height, width, height], np.float64)
    # stored upright (ImageOptions.upright): the displayed frame is the stored one
    assert loaded.orientation == 1, "annotated images are stored with their orientation applied"
    stored, kept, scale = geometry.resized_boxes(corners, height, width, opts.resizing)
    left = [b for b, k in zip(boxes, kept, strict=True) if k]
    # the area of a box the file gives none for: the box's own, in source pixels
    areas = [
        (b.area if b.area is not None else (b.x1 - b.x0) * (b.y1 - b.y0)) * scale
        if not annotated.normalized
        else (b.x1 - b.x0) * (b.y1 - b.y0) * height * width * scale
        for b in left
    ]
    objects = Objects(
        xmin=tuple(float(v) for v in stored[:, 0]),
        ymin=tuple(float(v) for v in stored[:, 1]),
        xmax=tuple(float(v) for v in stored[:, 2]),
        ymax=tuple(float(v) for v in stored[:, 3]),
        label=tuple(b.label for b in left),
        text=tuple(b.text for b in left),
        area=tuple(areas),
        crowd=tuple(int(b.crowd) for b in left),
        difficult=tuple(int(b.difficult) for b in left),
        truncated=tuple(int(b.truncated) for b in left),
        source_id=annotated.source_id,
    )
    return objects, fields


def _kind(value: object) -> str:
    if isinstance(value, bool | int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "floats" if isinstance(value, tuple) else "str"


def _check_size(annotated: Annotated, height: int, width: int, orientation: int) -> None:
    """The size the annotation file states must be the displayed image's."""
    if annotated.width is None or annotated.height is None:
        return
    if (annotated.width, annotated.height) == (width, height):
        return
    stated = f"{annotated.width}x{annotated.height}"
    hint = "; annotate the image as it is displayed, or fix the size in the file"
    if orientation != 1 and (annotated.width, annotated.height) == (height, width):
        hint = (
            f" (its stored pixels, before EXIF orientation {orientation}): imgrec takes"
            " annotations in the displayed frame; annotate the image as it is displayed"
        )
    raise Misplaced(
        f"{annotated.where}: gives the image's size as {stated}, but it is"
        f" {width}x{height} as displayed{hint}"
    )


def _check_inside(annotated: Annotated, box: PixelBox, height: int, width: int) -> None:
    values = (box.x0, box.y0, box.x1, box.y1)
    if not all(math.isfinite(v) for v in values):
        raise Misplaced(f"{annotated.where}: {box.ident}: the box has a number that is not finite")
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise Misplaced(f"{annotated.where}: {box.ident}: the box has no area")
    s = EDGE_SLACK
    if box.x0 < -s or box.y0 < -s or box.x1 > width + s or box.y1 > height + s:
        raise Misplaced(
            f"{annotated.where}: {box.ident}: the box (x {box.x0:g}..{box.x1:g}, y"
            f" {box.y0:g}..{box.y1:g}) is outside the {width}x{height} image (as displayed);"
            " fix or remove it"
        )
