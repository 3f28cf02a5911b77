"""Records decoded with NumPy and Pillow by ``imgrec.dataset``'s rules, for readers without
TensorFlow (``random_access.RecordSource``): the pack's pixel functions (``images/``), JPEGs
through ``turbo`` where it gives Pillow's pixels, the record's orientation, its channels or
those asked for, the JPEG DCT scale and crop windows of ``graph.py`` and ``crops.py``, and
the annotation keys of ``objects.py``, moved by crops and flips, unbatched, as NumPy arrays
(masks resized by nearest neighbour: ``numpy_resize``)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..format import schema
from ..images.modes import MODES, natural_pixels
from ..images.pillow import open_header, sixteen_bit_colour
from ..images.pixels import orient, shape_channels
from . import turbo
from .crops import Window
from .graph import RATIOS, jpeg_ratio
from .numpy_resize import nearest
from .objects import flip_order
from .paths import Known


def decode_image(
    record: schema.Record,
    channels: int | None = None,
    at_least: tuple[int, int] | None = None,
    window: Callable[[tuple[int, int]], Window] | None = None,
    fresh: bool = True,
) -> np.ndarray:
    """The record's pixels as stored (HWC, its dtype), oriented, in its channels or
    ``channels``: the pixels pack would store raw from the same bytes. With ``at_least``
    (height, width: the size it is resized to next), a JPEG is decoded at the largest DCT
    scale that still covers it, as ``imgrec.dataset`` decodes it (``graph.jpeg_ratio``).
    With ``window`` (the stored image's (height, width) -> (y, x, h, w)), only that part,
    cut before the orientation is applied, as ``imgrec.dataset`` cuts it; a JPEG at the
    largest DCT scale at which the window's shorter side still covers the larger side of
    ``at_least`` (``graph``'s rule for ``decode_and_crop_jpeg``). Raw pixels are a
    read-only view of the record's bytes unless ``fresh`` (for a caller that makes new
    arrays of them anyway)."""
    want = channels or record.channels
    if record.format == "raw":
        shape = (record.height, record.width, record.channels)
        arr = np.frombuffer(record.data, np.dtype(record.dtype)).reshape(shape)
        if window is not None:
            arr = _cut(arr, window(shape[:2]))
        if want == record.channels:
            return arr.copy() if fresh else arr
        return shape_channels(arr, 1 if record.channels in (1, 2) else 3, want)
    natural, base = _stored(record, at_least, window)
    arr = shape_channels(orient(natural, record.orientation), base, want)
    return arr.copy() if fresh and not arr.flags.writeable else arr  # (Pillow's are not)


def _stored(
    record: schema.Record,
    at_least: tuple[int, int] | None,
    window: Callable[[tuple[int, int]], Window] | None,
) -> tuple[np.ndarray, int]:
    """An encoded record's pixels as stored (before its orientation), cut to the window,
    and its mode's base channel count (1 or 3)."""
    fast = turbo.header(record.data) if record.format == "jpeg" else None
    if fast is not None:
        _check_size(record, fast[:2])
        cut = None if window is None else window(fast[:2])
        ratio = _jpeg_scale(record, at_least, cut)
        natural = turbo.decode(record.data, fast, ratio)
        if natural is not None:
            return _scaled_cut(natural, cut, ratio), natural.shape[-1]
    # Without Pillow's decompression-bomb check (a process-wide setting): the pack checked
    # --max-pixels, and the header must give the record's own size.
    im = open_header(io.BytesIO(record.data))
    if im is None:
        raise ValueError(f"image/format is {record.format}, but Pillow does not recognise it")
    _check_size(record, (im.height, im.width))
    cut = None if window is None else window((im.height, im.width))
    with im:
        ratio = _jpeg_scale(record, at_least, cut)
        if ratio > 1:  # Pillow's draft picks this scale for these sizes: libjpeg's 1/ratio
            im.draft(im.mode, (im.width // ratio, im.height // ratio))
        tiles = list(getattr(im, "tile", []))
        im.load()
        mode = MODES.get(im.mode)
        if mode is None:
            raise ValueError(f"Pillow mode {im.mode!r} is not a mode imgrec stores")
        natural = None
        if im.mode in ("RGB", "RGBA") and record.dtype == "uint16":
            natural = sixteen_bit_colour(record.data, tiles)
        if natural is None:
            natural = natural_pixels(im)
    return _scaled_cut(natural, cut, ratio), mode.base


def _check_size(record: schema.Record, hw: tuple[int, int]) -> None:
    shown = hw if record.orientation < 5 else hw[::-1]
    if shown != (record.height, record.width):
        raise ValueError(
            f"the image is {hw[1]}x{hw[0]}, the record says"
            f" {record.width}x{record.height} (orientation {record.orientation})"
        )


def _jpeg_scale(record: schema.Record, at_least: tuple[int, int] | None, cut: Window | None) -> int:
    """The DCT scale ``imgrec.dataset`` decodes this record at: 1 but for a JPEG resized
    next; the largest that covers ``at_least``, or with a crop, whose window's shorter side
    still covers its larger side (``graph``'s rules)."""
    if at_least is None or record.format != "jpeg":
        return 1
    if cut is None:
        return jpeg_ratio((record.height, record.width), at_least)
    side = max(at_least)
    return next(r for r in RATIOS if r == 1 or min(cut[2:]) // r >= side)


def _scaled_cut(natural: np.ndarray, cut: Window | None, ratio: int) -> np.ndarray:
    """``natural`` cut to the window, in the decoded scale's pixels, as
    ``decode_and_crop_jpeg`` takes it."""
    if cut is None:
        return natural
    y, x, h, w = cut if ratio == 1 else (v // ratio for v in cut)
    return _cut(natural, (y, x, max(h, 1), max(w, 1)))


def _cut(image: np.ndarray, window: Window) -> np.ndarray:
    y, x, h, w = window
    return image[y : y + h, x : x + w]


def annotations_of(
    record: schema.Record,
    known: Known | None,
    size: tuple[int, int] | None = None,
    window: Callable[[tuple[int, int]], Window] | None = None,
    flip: bool = False,
) -> dict[str, Any]:
    """The annotation keys of ``imgrec.dataset``'s dict, unbatched, as NumPy arrays. A
    dataset packed with annotations (its manifests' ``columns`` not None) gives every record
    the object keys, empty where it has none; other shards what each record holds. Masks are
    cut to the crop window (``window`` of the record's (height, width): y, x, h, w, drawn
    only for a record with annotations) and mirrored where ``flip``, then resized to
    ``size`` with nearest neighbour, as the image is; boxes and keypoints move with them
    (``objects.cropped``'s rules)."""
    out: dict[str, Any] = {}
    columns = known.columns if known is not None else None
    o = record.objects
    if o is None and columns is not None:
        o = schema.Objects()
    cut = None
    if window is not None and (o is not None or record.mask is not None):
        cut = window((record.height, record.width))
    if o is not None:
        out["bounding_boxes"] = {
            "boxes": np.array([o.ymin, o.xmin, o.ymax, o.xmax], np.float32).T.reshape(-1, 4),
            "labels": np.array(o.label, np.int32),
        }
        out["objects"] = {
            "area": np.array(o.area, np.float32),
            "is_crowd": np.array(o.crowd, np.int32),
            "difficult": np.array(o.difficult, np.int32),
            "truncated": np.array(o.truncated, np.int32),
        }
        named = known.keypoints if known is not None else None
        if o.keypointed or named:
            n = len(o.label)
            k = max(map(len, named.values())) if named else len(o.keypoint_x) // max(n, 1)
            y = np.array(o.keypoint_y, np.float32).reshape(n, k)
            x = np.array(o.keypoint_x, np.float32).reshape(n, k)
            out["keypoints"] = {
                "points": np.stack([y, x], axis=-1),
                "visibility": np.array(o.keypoint_visibility, np.int32).reshape(n, k),
            }
        if o.masks is not None or known is not None and known.instance_masks:
            masks = _moved(_masks(o.masks or (), record), cut, flip, 1)
            out["object_masks"] = masks if size is None else nearest(masks, size, 1)
    if record.mask is not None:
        mask = _moved(_png(record.mask)[..., :1], cut, flip, 0)
        out["segmentation_mask"] = mask if size is None else nearest(mask, size, 0)
    if o is not None or record.fields:
        types = columns or {}
        out["fields"] = {
            name: _field(types.get(name, kind), value) for name, kind, value in record.fields
        }
    if cut is not None and o is not None:
        names = known.keypoints if known is not None else None
        order = flip_order(names) if names else None
        out.update(_cropped(out, cut, (record.height, record.width), flip, order))
    return out


def _moved(masks: np.ndarray, window: Window | None, flip: bool, axis: int) -> np.ndarray:
    """Masks (pixel axes ``axis`` and ``axis + 1``) cut to ``window`` and mirrored."""
    if window is not None:
        y, x, h, w = window
        masks = np.take(np.take(masks, np.arange(y, y + h), axis), np.arange(x, x + w), axis + 1)
    return np.flip(masks, axis + 1).copy() if flip else masks


def _cropped(
    found: dict[str, Any],
    window: Window,
    size: tuple[int, int],
    flip: bool,
    order: tuple[int, ...] | None,
) -> dict[str, Any]:
    """``objects.cropped`` in NumPy, in float32 and in its order of operations: boxes moved
    into the window, clipped, mirrored where ``flip``; objects left with no area dropped with
    all their lists (object masks, already moved, too); each area times the share of its
    box left; keypoints moved, those outside unlabelled, left/right slots swapped by
    ``order`` where ``flip``."""
    f32 = np.float32
    boxes = found["bounding_boxes"]["boxes"]
    h, w = f32(size[0]), f32(size[1])
    top, left = f32(window[0]) / h, f32(window[1]) / w
    tall, wide = f32(window[2]) / h, f32(window[3]) / w
    y0, x0, y1, x1 = (
        np.clip((boxes[:, k] - at) / by, f32(0), f32(1))
        for k, at, by in ((0, top, tall), (1, left, wide), (2, top, tall), (3, left, wide))
    )
    if flip:
        x0, x1 = f32(1) - x1, f32(1) - x0
    kept = (y1 > y0) & (x1 > x0)
    visible = (y1 - y0) * tall * (x1 - x0) * wide
    whole = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = found["objects"]["area"] * visible / np.maximum(whole, f32(1e-12))
    objects = {**found["objects"], "area": area}
    out: dict[str, Any] = {
        "bounding_boxes": {
            "boxes": np.stack([y0, x0, y1, x1], axis=-1)[kept].reshape(-1, 4),
            "labels": found["bounding_boxes"]["labels"][kept],
        },
        "objects": {name: values[kept] for name, values in objects.items()},
    }
    if "object_masks" in found:
        out["object_masks"] = found["object_masks"][kept]
    if "keypoints" in found:
        points, seen = found["keypoints"]["points"], found["keypoints"]["visibility"]
        y = (points[..., 0] - top) / tall
        x = (points[..., 1] - left) / wide
        inside = (y >= 0) & (y <= 1) & (x >= 0) & (x <= 1)
        seen = np.where(inside, seen, 0).astype(np.int32)
        if flip:
            x = f32(1) - x
        labelled = seen > 0
        at = np.stack([np.where(labelled, y, f32(0)), np.where(labelled, x, f32(0))], -1)
        if flip and order is not None:
            at, seen = at[:, list(order)], seen[:, list(order)]
        out["keypoints"] = {"points": at[kept], "visibility": seen[kept]}
    return out


def _png(data: bytes) -> np.ndarray:
    im = open_header(io.BytesIO(data))  # a mask, at its image's size: checked as the image
    if im is None:
        raise ValueError("a mask is not a PNG Pillow recognises")
    with im:
        arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def _masks(masks: Sequence[bytes], record: schema.Record) -> np.ndarray:
    if not masks:
        return np.zeros((0, record.height, record.width), np.uint8)
    return np.stack([_png(m)[..., 0] for m in masks])


def _field(kind: str, value: Any) -> Any:
    """A field's value as ``imgrec.dataset`` types it: by its column's type (a record alone
    cannot tell one number from a list of one)."""
    if kind == "str":
        return value
    if kind == "int":
        return np.int64(value[0]) if len(value) == 1 else np.array(value, np.int64)
    if kind == "float":
        return np.float32(value[0]) if len(value) == 1 else np.array(value, np.float32)
    return np.array(value, np.float32)
