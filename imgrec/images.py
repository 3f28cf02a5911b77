"""Open, sniff and normalise one image with Pillow, and produce what a record stores.

Every decision about pixels lives here: which Pillow modes become which channels and
dtype (the table in the README is checked against ``MODES``), when the source bytes can be
kept as they are, and how anything else is transcoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own default limit (about 89.5 megapixels), used as imgrec's default for --max-pixels.
DEFAULT_MAX_PIXELS = 89_478_485

# Files whose content Pillow does not recognise are ignored, except that a file carrying one
# of these extensions is reported as skipped: it was probably meant to be an image.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm .tga"
    " .ico .jp2 .j2k .heic .avif .psd .dds .pcx .sgi .icns .apng".split()
)


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
    "RGB": Mode(3, "uint8", False, None, "8-bit colour"),
    "RGBX": Mode(3, "uint8", False, "RGB", "padding byte dropped"),
    "RGBA": Mode(3, "uint8", True, None, "colour + alpha"),
    "RGBa": Mode(3, "uint8", True, "RGBA", "premultiplied alpha, un-premultiplied"),
    "CMYK": Mode(3, "uint8", False, "RGB", "converted to RGB by Pillow"),
    "YCbCr": Mode(3, "uint8", False, "RGB", "converted to RGB by Pillow"),
    "LAB": Mode(3, "uint8", False, "RGB", "converted to sRGB with Pillow's ImageCms"),
    "HSV": Mode(3, "uint8", False, "RGB", "converted to RGB"),
    "I;16": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16L": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16B": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I;16N": Mode(1, "uint16", False, None, "16-bit gray, kept 16-bit"),
    "I": Mode(1, "int32", False, None, "32-bit signed integer, values kept, stored raw"),
    "F": Mode(1, "float32", False, None, "32-bit float, values kept, stored raw"),
}

# (source format, Pillow mode, stored channels) whose original bytes TensorFlow's decoder
# (JPEG with dct_method="INTEGER_ACCURATE") turns into exactly the pixels ``to_array`` gives.
# Anything else is transcoded. Adding alpha is left out for bilevel, low-bit gray and
# palette PNGs: TensorFlow fills it with the source's bit-depth maximum (1, 3, 15), not 255.
# tests/test_images.py checks every entry against TensorFlow.
PASSTHROUGH = frozenset(
    [("JPEG", "L", 1), ("JPEG", "L", 3), ("JPEG", "RGB", 3)]
    + [("PNG", m, c) for m in ("1", "L", "LA", "I;16") for c in (1, 3)]
    + [("PNG", m, 3) for m in ("P", "RGB", "RGBA")]
    + [("PNG", m, 4) for m in ("LA", "RGB", "RGBA", "I;16")]
)


def can_pass_through(im: Image.Image, channels: int) -> bool:
    if im.mode == "P" and channels == 4:
        # Palette + tRNS expands to real alpha in TensorFlow as in Pillow.
        return im.format == "PNG" and "transparency" in im.info
    return (im.format, im.mode, channels) in PASSTHROUGH


class NotAnImage(Exception):
    """Pillow does not recognise the content as an image."""


class SkipImage(Exception):
    """An image that cannot be packed; the message is the reason recorded in the manifest."""


@dataclass(frozen=True)
class Options:
    format: str = "encoded"  # encoded | png | jpeg | raw
    quality: int = 95
    channels: str = "auto"  # auto | 1 | 3 | 4
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Loaded:
    """The stored form of one image."""

    data: bytes
    format: str  # jpeg | png | raw
    height: int
    width: int
    channels: int
    dtype: str
    sha256: str
    orientation: int = 1
    note: str | None = None  # why the stored form differs from the source, if it does


def read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SkipImage(f"unreadable: {e.strerror or e}") from None


def open_image(data: bytes) -> Image.Image:
    """Open (header only). Raises NotAnImage when Pillow does not recognise the content."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise NotAnImage() from None
    except Image.DecompressionBombError as e:
        raise SkipImage(f"too many pixels: {e}") from None
    except Exception as e:  # Pillow plugins raise many types on malformed headers
        raise SkipImage(f"corrupt header: {_describe(e)}") from None


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # corrupt EXIF must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _has_real_alpha(im: Image.Image, mode: Mode) -> bool:
    if not mode.alpha:
        return False
    if im.mode == "P":
        if "transparency" not in im.info and (im.palette is None or im.palette.mode != "RGBA"):
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


def to_array(im: Image.Image, channels: int) -> np.ndarray:
    """Pixels as a C-order HWC array with ``channels`` channels, per ``MODES``."""
    mode = MODES[im.mode]
    if im.mode == "P":
        im = im.convert("RGBA" if channels == 4 else "RGB")
    elif im.mode == "LAB":
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        converted = ImageCms.applyTransform(im, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
        assert converted is not None  # None only when converting in place
        im = converted
    elif im.mode == "HSV":
        im = _hsv_to_rgb(im)
    elif mode.convert:
        im = im.convert(mode.convert)

    if mode.base == 3 and channels == 1:
        return np.asarray(im.convert("L"))[..., None]
    arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[..., None]
    if mode.dtype == "uint16":
        arr = arr.astype(np.uint16)  # native byte order, whatever the I;16 variant
    color, alpha = arr[..., : min(arr.shape[2], 3) if mode.base == 3 else 1], None
    if arr.shape[2] in (2, 4):
        alpha = arr[..., -1:]
    if channels == 1:
        return np.ascontiguousarray(color)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(color)
    if alpha is None:
        alpha = np.full(color.shape[:2] + (1,), np.iinfo(color.dtype).max, color.dtype)
    return np.ascontiguousarray(np.concatenate([color, alpha], axis=2))


def _hsv_to_rgb(im: Image.Image) -> Image.Image:
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


def encode_png(arr: np.ndarray) -> bytes | None:
    """Lossless PNG of an HWC array, or None when PNG (through Pillow) cannot hold it."""
    h, w, c = arr.shape
    if arr.dtype == np.uint8 and c in (1, 3, 4):
        im = Image.fromarray(arr[..., 0] if c == 1 else arr, {1: "L", 3: "RGB", 4: "RGBA"}[c])
    elif arr.dtype == np.uint16 and c == 1:
        im = Image.frombytes("I;16", (w, h), arr.astype("<u2").tobytes())
    else:
        return None
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def encode_jpeg(arr: np.ndarray, quality: int) -> bytes | None:
    if arr.dtype != np.uint8 or arr.shape[2] not in (1, 3):
        return None
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def load(path: Path, opts: Options) -> Loaded:
    """Read, validate and convert one file into its stored form.

    Raises NotAnImage (ignore it) or SkipImage (report it, with the reason).
    """
    data = read_source(path)
    with warnings.catch_warnings():
        # Pillow warns about odd but readable files (palette transparency, EXIF); the
        # outcome is recorded per image instead.
        warnings.simplefilter("ignore")
        return _load(data, opts)


def _load(data: bytes, opts: Options) -> Loaded:
    sha = hashlib.sha256(data).hexdigest()
    im = open_image(data)
    if im.width * im.height > opts.max_pixels:
        raise SkipImage(
            f"too many pixels: {im.width}x{im.height} is over --max-pixels {opts.max_pixels}"
        )
    try:
        im.load()
    except Exception as e:
        raise SkipImage(f"cannot decode: {_describe(e)}") from None
    mode = MODES.get(im.mode)
    if mode is None:
        raise SkipImage(f"unsupported Pillow mode {im.mode!r}")
    src_format = im.format or ""
    channels = target_channels(im, mode, opts.channels)
    orientation = _orientation(im)

    if opts.format == "encoded" and can_pass_through(im, channels):
        height, width = (im.width, im.height) if orientation >= 5 else (im.height, im.width)
        dtype = "uint16" if _png_bit_depth(data) == 16 else mode.dtype
        return Loaded(data, src_format.lower(), height, width, channels, dtype, sha, orientation)

    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    arr = to_array(im, channels)
    h, w, c = arr.shape
    dtype = str(arr.dtype)
    note = None
    if opts.format == "encoded" and src_format not in ("JPEG", "PNG"):
        note = f"{src_format} {im.mode} transcoded to PNG"
    elif opts.format == "encoded":
        note = (
            f"{src_format} {im.mode} transcoded to PNG: TensorFlow would not decode it identically"
        )

    stored: bytes | None = None
    fmt = opts.format
    if fmt == "jpeg":
        stored = encode_jpeg(arr, opts.quality)
        if stored is None:
            fmt, note = "png", f"stored as PNG: JPEG cannot hold {c}-channel {dtype}"
    if fmt in ("png", "encoded"):
        fmt = "png"
        stored = encode_png(arr)
        if stored is None:
            fmt, note = "raw", f"stored raw: PNG cannot hold {c}-channel {dtype}"
    if fmt == "raw":
        stored = arr.tobytes()
    assert stored is not None
    return Loaded(stored, fmt, h, w, c, dtype, sha, 1, note)


def _png_bit_depth(data: bytes) -> int:
    """Bit depth from a PNG's IHDR chunk (0 if this is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 25:
        return 0
    return data[24]


def probe(path: Path) -> tuple[int, int, int]:
    """Cheap header look: ``(width, height, dense bytes per pixel)``.

    Used to plan shard counts. Raises NotAnImage or SkipImage like ``load``.
    """
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                im = Image.open(f)
            except UnidentifiedImageError:
                raise NotAnImage() from None
            except Image.DecompressionBombError as e:
                raise SkipImage(f"too many pixels: {e}") from None
            except Exception as e:
                raise SkipImage(f"corrupt header: {_describe(e)}") from None
            mode = MODES.get(im.mode)
            per_pixel = (
                (mode.base + mode.alpha) * {"uint8": 1, "uint16": 2}.get(mode.dtype, 4)
                if mode
                else 3
            )
            return im.width, im.height, per_pixel
    except OSError as e:
        raise SkipImage(f"unreadable: {e.strerror or e}") from None
