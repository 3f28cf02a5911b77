"""Pillow modes: what each becomes (base channels, dtype, alpha), and its pixels as a NumPy
array. The table of modes in docs/pixel-rules.md is checked against ``MODES``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from .pixels import hsv_to_rgb, shape_channels

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Mode:
    """What a Pillow mode becomes: its base channels (1 gray, 3 colour), dtype, and whether
    it can carry alpha."""

    base: int
    dtype: str
    alpha: bool
    convert: str | None  # the Pillow mode to convert to before reading pixels
    note: str


MODES: dict[str, Mode] = {
    "1": Mode(1, "uint8", False, "L", "bilevel, stored as 0 and 255"),
    "L": Mode(1, "uint8", False, None, "8-bit gray"),
    "LA": Mode(1, "uint8", True, None, "gray + alpha"),
    "La": Mode(1, "uint8", True, "LA", "gray + premultiplied alpha, un-premultiplied"),
    "P": Mode(3, "uint8", True, None, "palette, expanded to RGB (RGBA if transparent)"),
    "PA": Mode(3, "uint8", True, "RGBA", "palette + alpha, expanded to RGBA"),
    "RGB": Mode(3, "uint8", False, None, "8-bit colour (16-bit PNG and TIFF: uint16)"),
    "RGBX": Mode(3, "uint8", False, "RGB", "padding byte dropped"),
    "RGBA": Mode(3, "uint8", True, None, "colour + alpha (16-bit PNG and TIFF: uint16)"),
    "RGBa": Mode(3, "uint8", True, "RGBA", "premultiplied alpha, un-premultiplied"),
    "CMYK": Mode(3, "uint8", False, "RGB", "converted to RGB by Pillow"),
    "YCbCr": Mode(3, "uint8", False, "RGB", "converted to RGB by Pillow"),
    "LAB": Mode(3, "uint8", False, None, "converted to sRGB with Pillow's ImageCms"),
    "HSV": Mode(3, "uint8", False, None, "converted to RGB"),
    "I;16": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16L": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16B": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16N": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I": Mode(1, "int32", False, None, "32-bit signed integer, values kept, stored raw"),
    "F": Mode(1, "float32", False, None, "32-bit float, values kept, stored raw"),
}


def _has_real_alpha(im: Image.Image, mode: Mode) -> bool:
    if not mode.alpha:
        return False
    if im.mode == "P":
        palette_alpha = im.palette is not None and im.palette.mode == "RGBA"
        if "transparency" not in im.info and not palette_alpha:
            return False
        im = im.convert("RGBA")
    elif mode.convert:
        im = im.convert(mode.convert)
    lo, _hi = im.getchannel("A").getextrema()
    return bool(int(lo) < 255)  # type: ignore[arg-type]


def target_channels(im: Image.Image, mode: Mode, channels: str) -> int:
    if channels != "auto":
        return int(channels)
    return 4 if _has_real_alpha(im, mode) else mode.base


def natural_pixels(im: Image.Image) -> np.ndarray:
    """Pixels at the mode's own dtype, HWC, alpha (if the mode has it) as the last channel."""
    import numpy as np

    mode = MODES[im.mode]
    if im.mode == "P":
        wants_alpha = "transparency" in im.info or (
            im.palette is not None and im.palette.mode == "RGBA"
        )
        im = im.convert("RGBA" if wants_alpha else "RGB")
    elif im.mode == "LAB":
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        converted = ImageCms.applyTransform(im, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
        assert converted is not None  # None only when converting in place
        im = converted
    elif im.mode == "HSV":
        im = hsv_to_rgb(im)
    elif mode.convert:
        im = im.convert(mode.convert)
    arr = np.asarray(im)
    if mode.dtype == "uint16":
        arr = arr.astype(np.uint16)  # native byte order, whatever the I;16 variant
    return arr[..., None] if arr.ndim == 2 else arr


def inks(im: Image.Image) -> np.ndarray:
    """A CMYK image's own samples, HWC (C, M, Y, K; 0 is no ink)."""
    import numpy as np

    return np.asarray(im)


def to_array(im: Image.Image, channels: int) -> np.ndarray:
    """Pixels as a C-order HWC array with ``channels`` channels, per ``MODES``."""
    return shape_channels(natural_pixels(im), MODES[im.mode].base, channels)


def itemsize(dtype: str) -> int:
    """Bytes per sample of a dtype the modes give (others through NumPy)."""
    size = _ITEMSIZES.get(dtype)
    if size is None:
        import numpy as np  # not for the modes' dtypes: NumPy only when pixels are needed

        size = int(np.dtype(dtype).itemsize)
    return size


_ITEMSIZES = {"uint8": 1, "uint16": 2, "int32": 4, "float32": 4}
