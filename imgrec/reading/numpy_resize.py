"""Resizing and scaling for readers without TensorFlow, by ``imgrec.dataset``'s rules:
``tf.image.resize``'s bilinear sampling (half-pixel centres, no antialiasing) in float32,
rounded back to the stored dtype (``graph.resize_rounded``), nearest neighbour for masks,
and ``tf.image.convert_image_dtype``'s scaling to float.

The intermediate arrays of a resize live in buffers kept per thread and reused: a fresh
array of a few hundred KB is fresh pages from the kernel (``mmap``), and touching them
for the first time cost more than the arithmetic (a 400x300 photo to 224x224: about
1.5 ms with fresh arrays, about 0.5 ms reusing them). Only the result is new.
"""

from __future__ import annotations

import threading

import numpy as np

# tf.image.convert_image_dtype's scale for each stored integer dtype: 1 / its maximum
SCALE = {name: np.float32(1 / np.iinfo(name).max) for name in ("uint8", "uint16", "int32")}
KEPT = 16 << 20  # bytes: larger intermediates are made afresh; a thread keeps six at most

_buffers = threading.local()


def _buffer(name: str, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A scratch array of ``shape`` and ``dtype``, this thread's own, reused call to call."""
    size = shape[0] * shape[1] * dtype.itemsize
    if size > KEPT:
        return np.empty(shape, dtype)
    kept: dict[str, np.ndarray] = getattr(_buffers, "kept", None) or {}
    _buffers.kept = kept
    key = f"{name}/{dtype.str}"
    held = kept.get(key)
    if held is None or held.size < shape[0] * shape[1]:
        held = kept[key] = np.empty(shape[0] * shape[1], dtype)
    return held[: shape[0] * shape[1]].reshape(shape)


def _weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's bilinear sampling with half-pixel centres, in float32 as its kernel
    computes it: for each output index, the two input indices and the weight of the second."""
    scale = np.float32(n_in) / np.float32(n_out)
    at = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(at)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(at), n_in - 1).astype(np.intp)
    return lower, upper, (at - floor).astype(np.float32)


def resize_rounded(
    image: np.ndarray, size: tuple[int, int], *, flip: bool = False, scaled: bool = False
) -> np.ndarray:
    """``tf.image.resize`` (bilinear) of an HWC image in float32, rounded back to its dtype,
    as ``imgrec.dataset`` resizes (``graph.resize_rounded``): along each row first, then
    down the columns, the kernel's own order of operations, so the floats are its floats.
    ``flip`` mirrors the result left-right (its columns computed in reverse order);
    ``scaled`` gives it as float32, ``to_float``'s, instead of the rounded integers."""
    (h, w), (th, tw) = image.shape[:2], size
    c = image.shape[2]
    if (h, w) == (th, tw):
        out = image[:, ::-1].copy() if flip else image
        return to_float(out) if scaled else out
    y0, y1, wy = _weights(h, th)
    x0, x1, wx = _weights(w, tw)
    if flip:
        x0, x1, wx = x0[::-1], x1[::-1], wx[::-1]
    f32 = np.dtype(np.float32)
    # Rows of channels-interleaved values: every step below runs along contiguous memory.
    if image.flags.c_contiguous:
        flat = image.reshape(h, w * c)
    else:  # an oriented or cut view: copied once, into this thread's buffer
        flat = _buffer("in", (h, w * c), image.dtype)
        np.copyto(flat.reshape(h, w, c), image)
    spread = np.arange(c)
    n = tw * c
    # (mode="clip": the indices are in range, and "raise" would buffer ``out`` once more)
    left, right = _buffer("l", (h, n), image.dtype), _buffer("r", (h, n), image.dtype)
    np.take(flat, (x0[:, None] * c + spread).ravel(), axis=1, out=left, mode="clip")
    np.take(flat, (x1[:, None] * c + spread).ravel(), axis=1, out=right, mode="clip")
    rows = np.subtract(right, left, out=_buffer("rows", (h, n), f32), dtype=f32)
    rows *= np.repeat(wx, c)
    rows += left
    top = np.take(rows, y0, axis=0, out=_buffer("top", (th, n), f32), mode="clip")
    step = np.take(rows, y1, axis=0, out=_buffer("step", (th, n), f32), mode="clip")
    step -= top
    step *= wy[:, None]
    top += step
    if image.dtype.kind != "f":
        np.rint(top, out=top)  # half to even, as tf.round
        limits = np.iinfo(image.dtype)
        if limits.max > 1 << 24:  # float32 holds larger integers inexactly
            np.clip(top, limits.min, limits.max, out=top)
        if scaled:  # the rounded integer times its scale: to_float of the integer
            product: np.ndarray = np.multiply(top, SCALE[image.dtype.name], dtype=f32)
            return product.reshape(th, tw, c)
    result = top.astype(image.dtype if not scaled else f32)
    return result.reshape(th, tw, c)


def nearest(masks: np.ndarray, size: tuple[int, int], axis: int) -> np.ndarray:
    """``tf.image.resize(..., method="nearest")`` of the pixel axes ``axis`` and ``axis + 1``:
    rows and columns picked (half-pixel centres), never blended."""

    def picked(n_in: int, n_out: int) -> np.ndarray:
        at = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * (
            np.float32(n_in) / np.float32(n_out)
        )
        picks: np.ndarray = np.minimum(np.floor(at), n_in - 1).astype(np.intp)
        return picks

    rows = picked(masks.shape[axis], size[0])
    cols = picked(masks.shape[axis + 1], size[1])
    out: np.ndarray = np.take(np.take(masks, rows, axis=axis), cols, axis=axis + 1)
    return out


def to_float(image: np.ndarray) -> np.ndarray:
    """``tf.image.convert_image_dtype(image, tf.float32)``: integers times float32(1 / max),
    floats as they are; always a new array."""
    scale = SCALE.get(image.dtype.name)
    if scale is None:
        return image.astype(np.float32)
    scaled: np.ndarray = np.multiply(image, scale, dtype=np.float32)
    return scaled
