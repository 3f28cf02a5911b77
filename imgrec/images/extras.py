"""Formats read through optional packages (extras): HEIC/HEIF through pillow-heif
(``imgrec[heif]``) and JPEG XL through imagecodecs (``imgrec[jxl]``).

Neither is registered with Pillow, whose plugin registry is process-wide: each file is read
through the package's own functions, only when it is installed. What they give is pixels
(HWC, uint8 or uint16, upright) plus the facts a record needs; TensorFlow decodes neither
format, so ``images.loading`` stores them as it stores any transcoded image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .formats import jxl_size

if TYPE_CHECKING:
    import numpy as np

EXTRAS = {"heif": ("HEIC/HEIF", "pillow_heif", "heif"), "jxl": ("JPEG XL", "imagecodecs", "jxl")}


class MissingExtra(Exception):
    """The file's format needs an extra that is not installed; ``str()`` says which."""


class Unreadable(Exception):
    """The package could not read the file (damaged or truncated)."""


class Unsupported(Exception):
    """An image the package reads, with samples imgrec does not store (floating point)."""


class TooManyPixels(Exception):
    """More pixels than --max-pixels, found from the headers; ``str()`` says the size."""


@dataclass(frozen=True)
class Opened:
    """An image an extra reads, headers read: its size as displayed, and how to decode it
    (HWC, uint8 or uint16, upright; a last channel of alpha when it has 2 or 4)."""

    format: str  # "HEIF" | "JPEG XL"
    width: int
    height: int
    bits: int  # bits per sample in the file (8, 10, 12, 16); 0: known once decoded
    icc: bytes | None
    others: str | None  # the file's other images, when it holds more than the one packed
    decode: Callable[[], np.ndarray]


def needed(kind: str) -> str:
    """Why a file of ``kind`` ("heif" or "jxl") cannot be read here, naming the extra."""
    what, package, extra = EXTRAS[kind]
    return (
        f"a {what} image, read only with imgrec's {extra!r} extra (the {package} package):"
        f" pip install 'imgrec[{extra}]', or convert it to JPEG or PNG"
    )


def open_extra(kind: str, data: bytes, max_pixels: int) -> Opened:
    """The image in ``data``, headers read only. Raises MissingExtra, TooManyPixels or
    Unreadable."""
    try:
        if kind == "heif":
            import pillow_heif
        else:
            import imagecodecs
    except ImportError:
        raise MissingExtra(needed(kind)) from None
    try:
        opened = _heif(pillow_heif, data) if kind == "heif" else _jxl(imagecodecs, data)
    except Unreadable:
        raise
    except Exception as e:  # the packages raise many types on damaged files
        raise Unreadable(f"{type(e).__name__}: {e}") from None
    if opened.width * opened.height > max_pixels:
        size = f"{opened.width}x{opened.height}"
        raise TooManyPixels(f"{size} is over --max-pixels {max_pixels}")
    return opened


def _heif(pillow_heif: Any, data: bytes) -> Opened:
    """The primary image of a HEIF file. libheif applies its transformations (``irot``,
    ``imir``, ``clap``) while decoding, and ignores the EXIF orientation, which HEIF
    declares informative only: so does imgrec (Apple's files carry both, and agree)."""
    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    image = heif[heif.primary_index]
    bits = int(image.info.get("bit_depth") or 8)
    depth = len(image.info.get("depth_images") or [])
    others = [f"{len(heif) - 1} more image(s)"] if len(heif) > 1 else []
    others += [f"{depth} depth map(s)"] if depth else []

    def decode() -> np.ndarray:
        import numpy as np

        try:
            arr = np.asarray(image)
        except Exception as e:
            raise Unreadable(f"{type(e).__name__}: {e}") from None
        arr = arr[..., None] if arr.ndim == 2 else arr
        if arr.dtype == np.uint16 and bits < 16:  # pillow-heif shifts; stretch to 0..65535
            value = arr >> (16 - bits)
            arr = (value << (16 - bits)) | (value >> (2 * bits - 16))
        return np.ascontiguousarray(arr)

    width, height = image.size
    icc = image.info.get("icc_profile") or None
    return Opened("HEIF", width, height, bits, icc, ", ".join(others) or None, decode)


def _jxl(imagecodecs: Any, data: bytes) -> Opened:
    """A JPEG XL image (its first frame), decoded by libjxl, which applies the orientation.
    Its headers give the size, checked against --max-pixels before anything is decoded;
    the channels and depth are known from the decode."""
    size = jxl_size(data)
    if size is None:
        raise Unreadable("its JPEG XL headers cannot be read")
    width, height, orientation = size
    if orientation >= 5:
        width, height = height, width

    def decode() -> np.ndarray:
        import numpy as np

        try:
            arr = imagecodecs.jpegxl_decode(data)
        except Exception as e:
            raise Unreadable(f"{type(e).__name__}: {e}") from None
        if arr.dtype not in (np.uint8, np.uint16):
            raise Unsupported(f"a JPEG XL of {arr.dtype} samples, which imgrec does not store")
        return np.ascontiguousarray(arr[..., None] if arr.ndim == 2 else arr)

    return Opened("JPEG XL", width, height, 0, None, None, decode)
