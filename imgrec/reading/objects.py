"""Annotations in the read: a record's objects and per-image fields as tensors, in the shape
Keras takes for boxes.

An example of a dataset packed with annotations is a dict:

- ``image``, ``label`` (and ``filename`` with ``with_filenames``), as in a plain read;
- ``bounding_boxes``: ``{"boxes": (N, 4) float32, "labels": (N,) int32}``, boxes as
  ``rel_yxyx`` (ymin, xmin, ymax, xmax as fractions of the image's height and width, the
  order of ``tf.image.draw_bounding_boxes``), labels the dataset's own class ids;
- ``objects``: ``{"area": float32, "is_crowd", "difficult", "truncated": int32}``, one per box;
- ``keypoints`` (a dataset with them): ``{"points": (N, K, 2) float32, "visibility": (N, K)
  int32}``, points as ``(y, x)`` fractions of the image (the order of the boxes, and of the
  TF Object Detection API's decoder), visibility COCO's v (0 not labelled, its point (0, 0);
  1 labelled but not visible; 2 visible);
- ``segmentation_mask``: (H, W, 1) uint8 class indices, 255 ignore (``--masks``);
- ``object_masks``: (N, H, W) uint8, one instance mask per box (1 inside, 0 outside; a COCO
  file with segmentations), at the image's size and moved with it;
- ``fields``: each per-image column by name (``int`` int64, ``float`` float32, ``str``
  string, ``floats`` a 1-D float32 tensor).

Batches pad the object lists to the longest in the batch with -1 (Keras's convention: a
label of -1 is no object; keypoints' points and visibility too), ``object_masks`` with
all-zero masks (B, N_max, H, W) and ``floats`` fields with NaN.

Crops move keypoints as boxes: a point the window leaves out becomes unlabelled (visibility
0, point (0, 0)) in its slot, and the random flip mirrors x. A flip also swaps the slots of
left/right pairs of names (``left_eye`` and ``right_eye``: the mirrored person's left eye is
the one drawn where the right one was), as COCO keypoint trainers do; see ``flip_order``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..format import schema

BOX_FORMAT = "rel_yxyx"
IGNORE = 255  # a mask's "no class", and its padding
PAD = -1
EXTRA = {"area": schema.AREA, "is_crowd": schema.CROWD, "difficult": schema.DIFFICULT,
         "truncated": schema.TRUNCATED}  # fmt: skip


_SIDE = re.compile(r"^(left|right)([_\- ]?)(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Keypoints:
    """What the read needs of a dataset's keypoints: K per object, and the slot order a
    flip puts them in (None: no swap)."""

    count: int
    order: tuple[int, ...] | None

    @classmethod
    def of(cls, names: dict[int, list[str]]) -> Keypoints:
        return cls(max(len(n) for n in names.values()), flip_order(names))


def flip_order(names: dict[int, list[str]]) -> tuple[int, ...] | None:
    """The slot each keypoint takes after a left-right flip: ``left_X`` and ``right_X``
    (``left``/``right`` then ``_``, ``-``, a space or nothing, any case) trade places, the
    others stay. None when no class has such a pair, or classes would swap differently
    (then no slot moves)."""
    k = max(len(n) for n in names.values())
    orders = set()
    for listed in names.values():
        slots = {name.lower(): i for i, name in enumerate(listed)}
        order = list(range(k))
        for i, name in enumerate(listed):
            side = _SIDE.match(name)
            if side is not None:
                other = ("right" if side[1].lower() == "left" else "left") + side[2] + side[3]
                order[i] = slots.get(other.lower(), i)
        orders.add(tuple(order))
    if len(orders) != 1 or orders == {tuple(range(k))}:
        return None
    return orders.pop()


def spec(
    tf: Any,
    columns: dict[str, str],
    masks: bool = False,
    keypoints: bool = False,
    instance_masks: bool = False,
) -> dict[str, Any]:
    """The parse spec of the annotation keys, for a dataset with these per-image columns
    (and, with ``masks``, a semantic mask in every record; with ``keypoints``, theirs; with
    ``instance_masks``, a mask per object)."""
    var = tf.io.VarLenFeature
    out = {key: var(tf.float32) for key in schema.OBJECT_FLOATS}
    if masks:
        out[schema.MASK] = tf.io.FixedLenFeature([], tf.string)
    if keypoints:
        out[schema.KEYPOINT_X] = var(tf.float32)
        out[schema.KEYPOINT_Y] = var(tf.float32)
        out[schema.KEYPOINT_VISIBILITY] = var(tf.int64)
    if instance_masks:
        out[schema.OBJECT_MASK] = var(tf.string)
    out.update({key: var(tf.int64) for key in schema.OBJECT_INTS})
    for name, kind in columns.items():
        key = schema.FIELD + name
        if kind == "floats":
            out[key] = var(tf.float32)
        else:
            dtype = {"int": tf.int64, "float": tf.float32, "str": tf.string}[kind]
            out[key] = tf.io.FixedLenFeature([], dtype)
    return out


def annotations_of(
    tf: Any, f: Any, columns: dict[str, str], points: Keypoints | None = None
) -> dict[str, Any]:
    """The parsed record ``f``'s annotations. (Pack stores images with annotations upright:
    no orientation moves their boxes.)"""

    def dense(key: str, dtype: Any) -> Any:
        return tf.cast(tf.sparse.to_dense(f[key]), dtype)

    x0, y0 = dense(schema.XMIN, tf.float32), dense(schema.YMIN, tf.float32)
    x1, y1 = dense(schema.XMAX, tf.float32), dense(schema.YMAX, tf.float32)
    count = tf.shape(x0)[0]

    def per_box(key: str, dtype: Any) -> Any:
        values = dense(key, dtype)  # area and the flags may be absent (another tool's)
        return tf.cond(tf.equal(tf.shape(values)[0], count), lambda: values,
                       lambda: tf.zeros([count], dtype))  # fmt: skip

    extra = {
        name: per_box(key, tf.float32 if key == schema.AREA else tf.int32)
        for name, key in EXTRA.items()
    }
    fields = {}
    for name, kind in columns.items():
        value = f[schema.FIELD + name]
        fields[name] = tf.sparse.to_dense(value) if kind == "floats" else value
    out = {
        "bounding_boxes": {
            "boxes": tf.stack([y0, x0, y1, x1], axis=-1),
            "labels": dense(schema.OBJECT_LABEL, tf.int32),
        },
        "objects": extra,
        "fields": fields,
    }
    if points is not None:
        k = points.count
        ky = tf.reshape(dense(schema.KEYPOINT_Y, tf.float32), [-1, k])
        kx = tf.reshape(dense(schema.KEYPOINT_X, tf.float32), [-1, k])
        seen = tf.reshape(dense(schema.KEYPOINT_VISIBILITY, tf.int32), [-1, k])
        out["keypoints"] = {"points": tf.stack([ky, kx], axis=-1), "visibility": seen}
    return out


def cropped(
    tf: Any, found: dict[str, Any], window: Any, size: Any, flip: Any,
    points: Keypoints | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``found`` (``annotations_of``) with its boxes moved into the crop ``window`` ([y, x,
    h, w] in pixels of an image of ``size`` [height, width]) and mirrored left-right where
    ``flip``: boxes clipped to the window; objects left with no area dropped, with their
    other lists (keypoints: see the module's note; ``object_masks``, already moved by
    ``object_masks_of``, too)."""
    boxes = found["bounding_boxes"]["boxes"]
    window = tf.cast(window, tf.float32)
    h, w = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    top, left = window[0] / h, window[1] / w
    tall, wide = window[2] / h, window[3] / w
    y0 = tf.clip_by_value((boxes[:, 0] - top) / tall, 0.0, 1.0)
    x0 = tf.clip_by_value((boxes[:, 1] - left) / wide, 0.0, 1.0)
    y1 = tf.clip_by_value((boxes[:, 2] - top) / tall, 0.0, 1.0)
    x1 = tf.clip_by_value((boxes[:, 3] - left) / wide, 0.0, 1.0)
    x0, x1 = tf.where(flip, 1.0 - x1, x0), tf.where(flip, 1.0 - x0, x1)
    kept = tf.logical_and(y1 > y0, x1 > x0)

    def keep(values: Any) -> Any:
        return tf.boolean_mask(values, kept)

    # each object's area times the share of its box left in the window: the visible
    # part's area, in the stored image's pixels (the flip changes no area)
    visible = (y1 - y0) * tall * (x1 - x0) * wide
    whole = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = found["objects"]["area"] * visible / tf.maximum(whole, 1e-12)
    objects = {**found["objects"], "area": area}
    out = {
        "bounding_boxes": {
            "boxes": keep(tf.stack([y0, x0, y1, x1], axis=-1)),
            "labels": keep(found["bounding_boxes"]["labels"]),
        },
        "objects": {name: keep(values) for name, values in objects.items()},
        "fields": found["fields"],
        **({"object_masks": keep(found["object_masks"])} if "object_masks" in found else {}),
    }
    if points is not None:
        moved = _points_cropped(tf, found["keypoints"], (top, left, tall, wide), flip, points)
        out["keypoints"] = {name: keep(values) for name, values in moved.items()}
    return out


def _points_cropped(
    tf: Any, found: dict[str, Any], window: tuple[Any, ...], flip: Any, points: Keypoints
) -> dict[str, Any]:
    """Keypoints moved into the window (fractions: top, left, height, width), those left
    outside unlabelled; mirrored, and left/right slots swapped, where ``flip``."""
    top, left, tall, wide = window
    y = (found["points"][..., 0] - top) / tall
    x = (found["points"][..., 1] - left) / wide
    inside = (y >= 0.0) & (y <= 1.0) & (x >= 0.0) & (x <= 1.0)
    seen = tf.where(inside, found["visibility"], 0)
    x = tf.where(flip, 1.0 - x, x)
    labelled = seen > 0
    at = tf.stack([tf.where(labelled, y, 0.0), tf.where(labelled, x, 0.0)], axis=-1)
    if points.order is not None:
        order = list(points.order)
        at = tf.where(flip, tf.gather(at, order, axis=1), at)
        seen = tf.where(flip, tf.gather(seen, order, axis=1), seen)
    return {"points": at, "visibility": seen}


def mask_of(tf: Any, f: Any, size: Any, window: Any = None, flip: Any = None) -> Any:
    """The record's semantic mask, (height, width, 1) uint8 class indices, moved as the
    pixels are: cut to the crop ``window`` ([y, x, h, w]) and mirrored where ``flip``, then
    resized to ``size`` ((height, width); None: as stored) with nearest neighbour, never a
    blend of two classes."""
    mask = tf.io.decode_png(f[schema.MASK], channels=1)
    if window is not None:
        mask = tf.image.crop_to_bounding_box(mask, window[0], window[1], window[2], window[3])
    if flip is not None:
        mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    if size is not None:
        mask = tf.image.resize(mask, size, method="nearest")
    return tf.cast(mask, tf.uint8)


def object_masks_of(tf: Any, f: Any, size: Any, window: Any = None, flip: Any = None) -> Any:
    """The record's instance masks, (N, height, width) uint8 (1 inside), moved as the pixels
    are: cut to the crop ``window`` ([y, x, h, w]) and mirrored where ``flip``, then resized
    to ``size`` ((height, width); None: as stored) with nearest neighbour."""
    pngs = tf.sparse.to_dense(f[schema.OBJECT_MASK])
    height = tf.cast(f[schema.HEIGHT], tf.int32)
    width = tf.cast(f[schema.WIDTH], tf.int32)
    one = tf.TensorSpec([None, None, 1], tf.uint8)

    def decoded() -> Any:
        return tf.map_fn(lambda png: tf.io.decode_png(png, channels=1), pngs,
                         fn_output_signature=one)  # fmt: skip

    # (map_fn cannot stack no elements of an unknown shape)
    masks = tf.cond(tf.size(pngs) > 0, decoded, lambda: tf.zeros([0, height, width, 1], tf.uint8))
    if window is not None:
        masks = masks[:, window[0] : window[0] + window[2], window[1] : window[1] + window[3]]
    if flip is not None:
        masks = tf.cond(flip, lambda: tf.reverse(masks, [2]), lambda: masks)
    if size is not None:
        masks = tf.image.resize(masks, size, method="nearest")
    return tf.cast(masks[..., 0], tf.uint8)


def padding(tf: Any, element_spec: Any, columns: dict[str, str]) -> Any:
    """``padded_batch``'s padding values for the host's elements (``element_spec``)."""

    def pad(spec: Any) -> Any:
        if spec.dtype == tf.string:
            return tf.constant("", tf.string)
        # Images pad with 0 (they are one size in a batch; uint8 has no -1)
        return tf.constant(0 if spec.dtype.is_unsigned else PAD, spec.dtype)

    values = tf.nest.map_structure(pad, element_spec)  # (image, label, filename, annotations)
    for name, kind in columns.items():
        if kind == "floats":
            values[-1]["fields"][name] = tf.constant(float("nan"), tf.float32)
    if "segmentation_mask" in values[-1]:
        values[-1]["segmentation_mask"] = tf.constant(IGNORE, tf.uint8)
    return values
