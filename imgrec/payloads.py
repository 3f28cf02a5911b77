"""An item's image, wherever it lies: a file (SRC's own images), or a record inside another
tool's dataset file (``imgrec convert``: MXNet RecordIO, Caffe LMDB, TFRecords). What comes
out is the same either way: a header look for the plan, and the stored form for a shard."""

from __future__ import annotations

import hashlib

import numpy as np

from . import images
from .converters import read_ref
from .discover import Item
from .pixels import shape_channels


def _payload(item: Item) -> bytes | np.ndarray:
    assert item.ref is not None
    try:
        payload = read_ref(item.path, item.ref)
    except OSError as e:
        raise images.SkipImage("unreadable", e.strerror or str(e)) from None
    if isinstance(payload, bytes) and not payload:
        raise images.SkipImage("empty", "the record holds no image bytes")
    return payload


def probe(item: Item, max_pixels: int) -> tuple[int, int, int]:
    """``images.probe`` of the item's image. Raises NotAnImage or SkipImage."""
    if item.ref is None:
        return images.probe(item.path, max_pixels)
    payload = _payload(item)
    if isinstance(payload, bytes):
        return images.probe_data(payload, max_pixels)
    h, w, c = payload.shape if payload.ndim == 3 else (0, 0, 0)
    if h * w > max_pixels:
        raise images.SkipImage("too-many-pixels", f"{w}x{h} is over --max-pixels {max_pixels}")
    return w, h, c * payload.dtype.itemsize


def load(item: Item, opts: images.Options) -> images.Loaded:
    """``images.load`` of the item's image. Raises NotAnImage or SkipImage."""
    if item.ref is None:
        return images.load(item.path, opts)
    payload = _payload(item)
    if isinstance(payload, bytes):
        return images.load_data(payload, opts)
    sha = hashlib.sha256(payload.tobytes()).hexdigest()
    return load_array(payload, opts, sha)


def load_array(arr: np.ndarray, opts: images.Options, sha256: str) -> images.Loaded:
    """An image that another tool stored as pixels (HWC; uint8, uint16 or float32; 1, 3 or
    4 channels, RGB order), into its stored form under the same rules as a file's."""
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise images.SkipImage("unsupported-mode", f"pixels of shape {list(arr.shape)}")
    if arr.dtype.name not in ("uint8", "uint16", "float32"):
        raise images.SkipImage("unsupported-mode", f"pixels of dtype {arr.dtype.name}")
    h, w, c = arr.shape
    if h * w > opts.max_pixels:
        raise images.SkipImage("too-many-pixels", f"{w}x{h} is over --max-pixels {opts.max_pixels}")
    base = 1 if c == 1 else 3
    channels = c if opts.channels == "auto" else int(opts.channels)
    shaped = shape_channels(np.ascontiguousarray(arr), base, channels)
    return images.store(shaped, opts, sha256, f"{c}-channel {arr.dtype.name} pixels", False)
