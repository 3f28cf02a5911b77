"""An item's image, wherever it lies: a file (SRC's own images), or a record inside another
tool's dataset file (``imgrec convert``: MXNet RecordIO, Caffe LMDB, TFRecords). What comes
out is the same either way: a header look for the plan, and the stored form for a shard."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from ..core import storage
from ..images import loading
from ..images.pixels import shape_channels
from ..images.stored import store
from .converters import read_ref
from .discover import Item

if TYPE_CHECKING:
    import numpy as np


def _payload(item: Item) -> bytes | np.ndarray:
    assert item.ref is not None
    try:
        payload = read_ref(item.path, item.ref)
    except OSError as e:
        raise loading.SkipImage("unreadable", e.strerror or str(e)) from None
    if isinstance(payload, bytes) and not payload:
        raise loading.SkipImage("empty", "the record holds no image bytes")
    return payload


def probe_item(item: Item, max_pixels: int) -> tuple[int, int, int]:
    """``loading.probe_file`` of the item's image. Raises NotAnImage or SkipImage."""
    if item.ref is None:
        return loading.probe_file(item.path, max_pixels)
    payload = _payload(item)
    if isinstance(payload, bytes):
        return loading.probe_bytes(payload, max_pixels)
    return _probe_array(payload, max_pixels)


def _probe_array(payload: np.ndarray, max_pixels: int) -> tuple[int, int, int]:
    h, w, c = payload.shape if payload.ndim == 3 else (0, 0, 0)
    if h * w > max_pixels:
        raise loading.SkipImage("too-many-pixels", f"{w}x{h} is over --max-pixels {max_pixels}")
    return w, h, c * payload.dtype.itemsize


# What a look at an item's header says: (width, height, dense bytes per pixel), or why it is
# not an image to pack.
Probed = tuple[int, int, int] | loading.NotAnImage | loading.SkipImage
# A probe's answer as plain data, to send between processes or write down: the facts, the
# skip reason, or None for a file that is not an image.
Portable = tuple[int, int, int] | str | None


def portable(probed: Probed) -> Portable:
    if isinstance(probed, loading.NotAnImage):
        return None
    if isinstance(probed, loading.SkipImage):
        return str(probed)
    return probed


def unportable(data: Portable | list[int]) -> Probed:
    """A probe's answer back from ``portable``'s (a list for facts read back from JSON)."""
    if data is None:
        return loading.NotAnImage()
    if isinstance(data, str):
        code, _, detail = data.partition(": ")
        return loading.SkipImage(code, detail)
    width, height, per_pixel = data
    return width, height, per_pixel


def item_options(item: Item, opts: loading.ImageOptions) -> loading.ImageOptions:
    """How the item's image is stored: upright when it has objects. (A pack's options say
    so for every image when it has annotations; a convert finds its source's objects only
    in the records.)"""
    if item.annotated is not None and item.annotated.boxed and not opts.upright:
        return replace(opts, upright=True)
    return opts


def read_once(
    item: Item, opts: loading.ImageOptions
) -> tuple[Probed, loading.Loaded | Exception | None]:
    """``probe_item`` and ``load_item`` of the item's image from a single read of it: what
    ``probe_item`` answers (or raises), and then the stored form (or what ``load_item``
    raised), None when the probe rules the item out."""
    opts = item_options(item, opts)
    try:
        if item.ref is not None:
            payload = _payload(item)
        else:
            payload = _read(item)
        if isinstance(payload, bytes):
            opened = loading.open_image(payload, opts.max_pixels)
            probed: Probed = loading.facts(opened)
        else:  # pixels another tool stored
            probed = _probe_array(payload, opts.max_pixels)
    except (loading.NotAnImage, loading.SkipImage) as e:
        return e, None
    try:
        if isinstance(payload, bytes):
            return probed, loading.load_bytes(payload, opts, opened)
        return probed, load_array(payload, opts, hashlib.sha256(payload.tobytes()).hexdigest())
    except Exception as e:  # encode.load_or_skip says what each means
        return probed, e


def _read(item: Item) -> bytes:
    """A file's bytes: b"" for an empty file (``probe_item`` finds no image in it)."""
    try:
        with storage.open_read(item.path) as f:
            return f.read()
    except OSError as e:
        raise loading.SkipImage("unreadable", e.strerror or str(e)) from None


def load_item(item: Item, opts: loading.ImageOptions) -> loading.Loaded:
    """``loading.load_file`` of the item's image. Raises NotAnImage or SkipImage."""
    opts = item_options(item, opts)
    if item.ref is None:
        return loading.load_file(item.path, opts)
    payload = _payload(item)
    if isinstance(payload, bytes):
        return loading.load_bytes(payload, opts)
    sha = hashlib.sha256(payload.tobytes()).hexdigest()
    return load_array(payload, opts, sha)


def load_array(arr: np.ndarray, opts: loading.ImageOptions, sha256: str) -> loading.Loaded:
    """An image that another tool stored as pixels (HWC; uint8, uint16 or float32; 1, 3 or
    4 channels, RGB order), into its stored form under the same rules as a file's."""
    import numpy as np

    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise loading.SkipImage("unsupported-mode", f"pixels of shape {list(arr.shape)}")
    if arr.dtype.name not in ("uint8", "uint16", "float32"):
        raise loading.SkipImage("unsupported-mode", f"pixels of dtype {arr.dtype.name}")
    h, w, c = arr.shape
    if h * w > opts.max_pixels:
        raise loading.SkipImage(
            "too-many-pixels", f"{w}x{h} is over --max-pixels {opts.max_pixels}"
        )
    base = 1 if c == 1 else 3
    channels = c if opts.channels == "auto" else int(opts.channels)
    shaped = shape_channels(np.ascontiguousarray(arr), base, channels)
    return store(shaped, opts, sha256, f"{c}-channel {arr.dtype.name} pixels", False)
