"""Pixel arithmetic on HWC NumPy arrays: orientation, channel changes, resizing, and
lossless PNG / JPEG encoding. No file I/O and no decisions about sources: those are in
``images``.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    import numpy as np

RESIZE_MODES = ("stretch", "fit", "fill", "pad")
# Lanczos: the sharpest of Pillow's antialiasing filters for shrinking photographs.
RESIZE_FILTER = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class Resize:
    """--resize (height, width) with --resize-mode, or --max-side; all None: keep the size."""

    size: tuple[int, int] | None = None
    mode: str = "stretch"
    max_side: int | None = None


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an HWC array, as PIL.ImageOps.exif_transpose does."""
    import numpy as np

    if orientation >= 5:
        arr = arr.transpose(1, 0, 2)
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        arr = arr[::-1]
    if flip_cols:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


def shape_channels(arr: np.ndarray, base: int, channels: int) -> np.ndarray:
    """Turn natural pixels (``base`` colour channels, maybe + alpha) into ``channels``."""
    import numpy as np

    colour = arr[..., :base]
    alpha = arr[..., base:] if arr.shape[2] > base else None
    if channels == 1:
        if base == 3:
            # Pillow's ITU-R 601-2 luma, in its own fixed-point form, for any integer depth.
            r, g, b = (colour[..., i].astype(np.int64) for i in range(3))
            y = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
            colour = y.astype(arr.dtype)[..., None]
        return np.ascontiguousarray(colour)
    if base == 1:
        colour = np.repeat(colour, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(colour)
    if alpha is None:
        top = np.iinfo(arr.dtype).max if arr.dtype.kind in "iu" else 1.0
        alpha = np.full(colour.shape[:2] + (1,), top, arr.dtype)
    return np.ascontiguousarray(np.concatenate([colour, alpha], axis=2))


def hsv_to_rgb(im: Image.Image) -> Image.Image:
    import numpy as np

    hsv = np.asarray(im).astype(np.float64) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(hsv.shape)
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        rgb[sel] = np.stack([r[sel], g[sel], b[sel]], axis=-1)
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")


def plan_resize(h: int, w: int, opts: Resize) -> tuple[int, int, int, int] | None:
    """``(scaled_h, scaled_w, final_h, final_w)`` for --resize/--max-side, or None when the
    image keeps its size."""
    if opts.max_side is not None:
        scale = opts.max_side / max(h, w)
        if scale >= 1:
            return None
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        return sh, sw, sh, sw
    if opts.size is None or (h, w) == opts.size:
        return None
    th, tw = opts.size
    if opts.mode == "stretch":
        return th, tw, th, tw
    cover = opts.mode == "fill"
    scale = max(tw / w, th / h) if cover else min(tw / w, th / h)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if opts.mode == "fit":
        return None if (sh, sw) == (h, w) else (sh, sw, sh, sw)
    return sh, sw, th, tw


def resize(arr: np.ndarray, opts: Resize, labels: bool = False) -> np.ndarray:
    """Apply --resize/--resize-mode or --max-side; returns ``arr`` itself when nothing changes.
    ``labels``: ``arr`` holds class indices (a uint8 mask): nearest neighbour, never a blend
    of two classes, and ``pad``'s border is 255, "ignore"."""
    import numpy as np

    plan = plan_resize(arr.shape[0], arr.shape[1], opts)
    if plan is None:
        return arr
    sh, sw, th, tw = plan
    if labels:
        nearest = Image.fromarray(arr[..., 0], "L").resize((sw, sh), Image.Resampling.NEAREST)
        scaled = np.asarray(nearest)[..., None]
    else:
        scaled = _resample(arr, sw, sh)
    if (sh, sw) == (th, tw):
        return scaled
    if opts.mode == "fill":  # centre crop
        top, left = (sh - th) // 2, (sw - tw) // 2
        return np.ascontiguousarray(scaled[top : top + th, left : left + tw])
    # pad: centred on black/transparent (on "ignore" for a mask)
    out = np.full((th, tw, arr.shape[2]), 255 if labels else 0, arr.dtype)
    top, left = (th - sh) // 2, (tw - sw) // 2
    out[top : top + sh, left : left + sw] = scaled
    return out


def _resample(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    import numpy as np

    c = arr.shape[2]
    if (arr.shape[1], arr.shape[0]) == (w, h):
        return arr
    if arr.dtype == np.uint8 and c in (1, 3, 4):
        # Pillow premultiplies alpha while resampling RGBA, so edges do not bleed colour.
        im = Image.fromarray(arr[..., 0] if c == 1 else arr, {1: "L", 3: "RGB", 4: "RGBA"}[c])
        out = np.asarray(im.resize((w, h), RESIZE_FILTER))
        return out[..., None] if out.ndim == 2 else out
    # Other depths: each channel as a float image, alpha premultiplied by hand.
    data = arr.astype(np.float32)
    if c == 4:
        top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "iu" else 1.0
        data[..., :3] *= data[..., 3:] / top
    planes = [
        np.asarray(Image.fromarray(data[..., i], "F").resize((w, h), RESIZE_FILTER))
        for i in range(c)
    ]
    out = np.stack(planes, axis=-1)
    if c == 4:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., :3] = np.where(out[..., 3:] > 0, out[..., :3] * top / out[..., 3:], 0)
    if arr.dtype.kind in "iu":
        # In float64, which holds every 32-bit integer: float32 rounds 2**31 - 1 up to 2**31,
        # which would wrap to the most negative value when cast back.
        info = np.iinfo(arr.dtype)
        out = np.clip(np.round(out.astype(np.float64)), info.min, info.max)
    return np.ascontiguousarray(out.astype(arr.dtype))


def encode_png(arr: np.ndarray) -> bytes | None:
    """Lossless PNG of an HWC array, or None when PNG cannot hold it (32-bit data)."""
    import numpy as np

    h, w, c = arr.shape
    if arr.dtype == np.uint8 and c in (1, 3, 4):
        im = Image.fromarray(arr[..., 0] if c == 1 else arr, {1: "L", 3: "RGB", 4: "RGBA"}[c])
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()
    if arr.dtype == np.uint16 and c in (1, 2, 3, 4):
        return _png16(arr)
    return None


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (Pillow cannot write 16-bit colour): filter 0 rows, zlib level 6."""
    import numpy as np

    h, w, c = arr.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw, 6)),
            chunk(b"IEND", b""),
        ]
    )


def encode_jpeg(arr: np.ndarray, quality: int) -> bytes | None:
    import numpy as np

    if arr.dtype != np.uint8 or arr.shape[2] not in (1, 3):
        return None
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
