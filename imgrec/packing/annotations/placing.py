"""An image's annotations placed on its stored pixels: checked against the image as
loaded (as displayed: its EXIF orientation applied, as it is stored), moved with it through
a resize (boxes and keypoints by ``images/geometry.py``, masks by ``pixels.resize`` with
nearest neighbour; instance masks by ``instance_masks``), and turned into the record's
objects, fields and mask (``format/schema.py``).

In a dataset with keypoints every object gets K of them (the most any class names): an
object of a class with fewer, or none, or without keypoints in the file, has the rest
unlabelled (visibility 0, x = y = 0, name ""). A point ``fill``'s crop leaves outside the
image becomes unlabelled in its slot; an object the crop removes takes its points along."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from ...core import storage
from ...format.schema import Field, Objects
from ...images import geometry, pixels
from ...images.loading import ImageOptions, Loaded
from . import Annotated, PixelBox, instance_masks

if TYPE_CHECKING:
    import numpy as np

# Boxes may pass the image's edge by this much (pixels) and are clipped to it: tools write
# x + w in floats (COCO's 640.01 for a 640-pixel image). Beyond it, a box is outside.
EDGE_SLACK = 0.5


class Misplaced(Exception):
    """Annotations that do not fit the loaded image: the image is skipped with this."""


@dataclass(frozen=True)
class Placed:
    """What a record carries of its image's annotations."""

    objects: Objects | None  # None: no box source describes the dataset
    fields: tuple[Field, ...]
    mask: bytes | None = None  # the semantic mask's PNG, at the stored image's size
    mask_classes: tuple[int, ...] = ()


def place(annotated: Annotated, loaded: Loaded, opts: ImageOptions) -> Placed:
    """What the record of ``loaded`` (the stored form of the image ``annotated`` describes)
    carries. Raises ``Misplaced`` for a problem the reader found or one that only the image
    shows (its size)."""
    if annotated.problem is not None:
        raise Misplaced(annotated.problem)
    fields = tuple((name, _kind(value), value) for name, value in annotated.fields)
    height, width = loaded.shown or (loaded.height, loaded.width)  # as displayed
    # stored upright (ImageOptions.upright): the displayed frame is the stored one
    assert loaded.orientation == 1 or not (annotated.boxed or annotated.mask)
    objects = None
    if annotated.boxed:
        _check_size(annotated, height, width, loaded.applied)
        objects = _objects(annotated, height, width, loaded.applied, opts)
    mask: bytes | None = None
    classes: tuple[int, ...] = ()
    if annotated.mask is not None:
        mask, classes = _mask(annotated.mask[0], height, width, loaded.applied, opts)
    return Placed(objects, fields, mask, classes)


def _objects(
    annotated: Annotated, height: int, width: int, applied: int, opts: ImageOptions
) -> Objects:
    import numpy as np

    boxes = annotated.boxes
    corners = np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes], np.float64).reshape(-1, 4)
    if annotated.unoriented:
        corners = geometry.oriented_boxes(corners, applied)
    if not annotated.normalized:
        for box in boxes:
            _check_inside(annotated, box, height, width)
        corners /= np.array([width, height, width, height], np.float64)
    stored, kept, scales = geometry.resized_boxes(corners, height, width, opts.resizing)
    left = [b for b, k in zip(boxes, kept, strict=True) if k]
    areas = []  # in source pixels (a box's own when the file gives none), then scaled
    for box, scale in zip(left, scales, strict=True):
        area = (box.x1 - box.x0) * (box.y1 - box.y0)
        if box.area is not None:  # the file's (COCO's, in pixels: the mask's, not the box's)
            area = box.area
        elif annotated.normalized:
            area *= height * width
        areas.append(float(scale) * area)
    points = _keypoints(annotated, height, width, opts, kept) if annotated.keypoints else {}
    masks = None
    if annotated.masked:  # objects dropped by fill's crop drop their masks
        try:
            masks = instance_masks.stored(boxes, kept.tolist(), height, width, opts.resizing)
        except instance_masks.BadShape as e:
            raise Misplaced(f"{annotated.where}: {e}") from None
    return Objects(
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
        **points,
        masks=masks,
    )


def _keypoints(
    annotated: Annotated, height: int, width: int, opts: ImageOptions, kept: np.ndarray
) -> dict[str, Any]:
    """The keypoint lists of the objects ``kept`` (``Objects``' keypoint fields): K per
    object, moved with the pixels."""
    import numpy as np

    k, boxes = annotated.keypoints, annotated.boxes
    xy = np.zeros((len(boxes), k, 2), np.float64)
    seen = np.zeros((len(boxes), k), np.int64)
    for i, box in enumerate(boxes):
        given = np.asarray(box.points, np.float64).reshape(-1, 3)[:k]
        for x, y, v in given:
            if v:
                _check_point(annotated, box, x, y, height, width)
        xy[i, : len(given)] = given[:, :2] / (width, height)
        seen[i, : len(given)] = given[:, 2]
    moved, inside = geometry.resized_points(xy.reshape(-1, 2), height, width, opts.resizing)
    seen = np.where(inside.reshape(seen.shape), seen, 0)[kept]
    moved = np.where(seen[..., None] > 0, moved.reshape(xy.shape)[kept], 0.0)
    names = dict(annotated.keypoint_names)
    text = []
    for box in (b for b, keep in zip(boxes, kept, strict=True) if keep):
        own = names.get(box.label, ())[:k]
        text += [*own, *([""] * (k - len(own)))]
    return {
        "keypointed": True,
        "keypoint_x": tuple(float(v) for v in moved[..., 0].ravel()),
        "keypoint_y": tuple(float(v) for v in moved[..., 1].ravel()),
        "keypoint_visibility": tuple(int(v) for v in seen.ravel()),
        "keypoint_num": tuple(int(n) for n in (seen > 0).sum(axis=1)),
        "keypoint_text": tuple(text),
    }


def _mask(
    path: str, height: int, width: int, applied: int, opts: ImageOptions
) -> tuple[bytes, tuple[int, ...]]:
    """The mask PNG at ``path``, checked (8-bit class indices, the image's displayed size),
    resized as the image was (nearest neighbour), as PNG bytes; and the classes it holds."""
    import numpy as np

    try:
        with storage.open_read(path) as f, Image.open(f) as im:
            mode, size = im.mode, im.size
            if mode not in ("L", "P"):
                raise Misplaced(
                    f"{path}: the mask is a {mode} image; a mask holds one class index per"
                    " pixel (an 8-bit gray or palette PNG)"
                )
            indices = np.asarray(im)  # a palette image's indices, not its colours
    except Misplaced:
        raise
    except Exception as e:  # Pillow raises many types on a damaged file
        raise Misplaced(f"{path}: the mask cannot be read ({type(e).__name__}: {e})") from None
    if size != (width, height):
        hint = ""
        if applied != 1 and size == (height, width):
            hint = f" (the size of its stored pixels, before EXIF orientation {applied})"
        raise Misplaced(
            f"{path}: the mask is {size[0]}x{size[1]}{hint}, but the image is {width}x{height}"
            " as displayed; make the mask the size of the displayed image"
        )
    moved = pixels.resize(indices[..., None], opts.resizing, labels=True)[..., 0]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(moved), "L").save(out, "PNG")
    return out.getvalue(), tuple(int(c) for c in np.unique(moved))


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


def _check_point(
    annotated: Annotated, box: PixelBox, x: float, y: float, height: int, width: int
) -> None:
    """A labelled keypoint may pass the image's edge by the boxes' slack, no more."""
    s = EDGE_SLACK
    if not (-s <= x <= width + s and -s <= y <= height + s):
        raise Misplaced(
            f"{annotated.where}: {box.ident}: a keypoint (x {x:g}, y {y:g}, at its pixel's"
            f" centre) is outside the {width}x{height} image (as displayed); fix or remove it"
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
