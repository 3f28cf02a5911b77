"""Open, sniff and normalise one image with Pillow, and produce what a record stores.

Every decision about pixels lives here: which Pillow modes become which channels and
dtype (the README's table is checked against ``MODES``), when the source bytes can be kept
as they are (``PASSTHROUGH``), how anything else is transcoded, resized and oriented, and why
an image is skipped (``REASONS``, also checked against the README).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import storage
from .storage import Location

# Pillow's own default limit (about 89.5 megapixels), used as imgrec's default for --max-pixels.
DEFAULT_MAX_PIXELS = 89_478_485
# protobuf refuses messages of 2 GiB and more; keep room for the other features.
MAX_PAYLOAD_BYTES = 2**31 - 1 - 2**16

# Files whose content Pillow does not recognise are ignored, except that a file carrying one
# of these extensions is reported as skipped: it was probably meant to be an image.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm"
    " .tga .ico .jp2 .j2k .heic .heif .avif .psd .dds .pcx .sgi .icns".split()
)

# Why an image is skipped. A reason in the manifest reads "<code>: <detail>".
REASONS = {
    "empty": "the file has 0 bytes",
    "not-an-image": "the extension says image, but Pillow does not recognise the content",
    "unreadable": "the file cannot be read (permissions, I/O error)",
    "broken-symlink": "a symbolic link to nothing, with an image extension",
    "missing": "named by --from-list, but there is no such file",
    "truncated": "the image data ends early (a partial download or copy)",
    "corrupt": "Pillow cannot decode the image data",
    "too-many-pixels": "more pixels than --max-pixels; not decoded",
    "unsupported-mode": "a Pillow mode imgrec has no rule for",
    "too-large": "the stored record would pass protobuf's 2 GiB message limit",
    "failed": "an unexpected error in imgrec (please report it, with the file if you can)",
}


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

RESIZE_MODES = ("stretch", "fit", "fill", "pad")
# Lanczos: the sharpest of Pillow's antialiasing filters for shrinking photographs.
RESIZE_FILTER = Image.Resampling.LANCZOS


class NotAnImage(Exception):
    """Pillow does not recognise the content as an image."""


class SkipImage(Exception):
    """An image that cannot be packed. ``str()`` is the manifest's reason: "<code>: <detail>"."""

    def __init__(self, code: str, detail: str = "") -> None:
        assert code in REASONS, code
        self.code = code
        super().__init__(f"{code}: {detail or REASONS[code]}")


@dataclass(frozen=True)
class Options:
    format: str = "encoded"  # encoded | png | jpeg | raw
    quality: int = 95
    channels: str = "auto"  # auto | 1 | 3 | 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize: tuple[int, int] | None = None  # (width, height)
    resize_mode: str = "stretch"
    max_side: int | None = None


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


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _decode_error(e: BaseException) -> SkipImage:
    text = str(e).lower()
    if "truncated" in text or "premature end" in text or isinstance(e, EOFError):
        return SkipImage("truncated", _describe(e))
    return SkipImage("corrupt", _describe(e))


@contextlib.contextmanager
def _pillow_limits() -> Iterator[None]:
    """imgrec checks --max-pixels itself, from the header, before decoding anything (with a
    message naming the limit that applies); Pillow's own check and warnings stand down."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(source: bytes | BinaryIO, max_pixels: int) -> Image.Image:
    """Open (header only). Raises NotAnImage when Pillow does not recognise the content."""
    if isinstance(source, bytes):
        if not source:
            raise NotAnImage()
        source = io.BytesIO(source)
    try:
        im = Image.open(source)
    except UnidentifiedImageError:
        raise NotAnImage() from None
    except Exception as e:  # Pillow plugins raise many types on malformed headers
        raise _decode_error(e) from None
    if im.width * im.height > max_pixels:
        raise SkipImage(
            "too-many-pixels", f"{im.width}x{im.height} is over --max-pixels {max_pixels}"
        )
    return im


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8); anything unreadable or out of range counts as 1."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # corrupt EXIF must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an HWC array, as PIL.ImageOps.exif_transpose does."""
    if orientation >= 5:
        arr = arr.transpose(1, 0, 2)
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        arr = arr[::-1]
    if flip_cols:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


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
        im = _hsv_to_rgb(im)
    elif mode.convert:
        im = im.convert(mode.convert)
    arr = np.asarray(im)
    if mode.dtype == "uint16":
        arr = arr.astype(np.uint16)  # native byte order, whatever the I;16 variant
    return arr[..., None] if arr.ndim == 2 else arr


def shape_channels(arr: np.ndarray, base: int, channels: int) -> np.ndarray:
    """Turn natural pixels (``base`` colour channels, maybe + alpha) into ``channels``."""
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


def to_array(im: Image.Image, channels: int) -> np.ndarray:
    """Pixels as a C-order HWC array with ``channels`` channels, per ``MODES``."""
    return shape_channels(natural_pixels(im), MODES[im.mode].base, channels)


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


ImageFileTile = Any  # Pillow's ImageFile._Tile, a named tuple
_SIXTEEN_BIT_SWAP = {"RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B"}
_SIXTEEN_BIT_SWAP.update({"RGBA;16B": "RGBA;16L", "RGBA;16L": "RGBA;16B"})


def _sixteen_bit_colour(data: bytes, tiles: list[ImageFileTile]) -> np.ndarray | None:
    """Full 16-bit samples of a 48/64-bit colour PNG or TIFF, which Pillow reads as 8-bit.

    Pillow's unpacker keeps each sample's high byte; decoding the same tiles again with the
    byte order swapped yields the low bytes. Both passes go through Pillow's own decoders.
    """
    if not tiles or any(_rawmode(t) not in _SIXTEEN_BIT_SWAP for t in tiles):
        return None
    hi = Image.open(io.BytesIO(data))
    lo = Image.open(io.BytesIO(data))
    lo.tile = [_with_rawmode(t, _SIXTEEN_BIT_SWAP[_rawmode(t)]) for t in tiles]
    hi.load()
    lo.load()
    full: np.ndarray = (np.asarray(hi).astype(np.uint16) << 8) | np.asarray(lo)
    return full


def _rawmode(tile: ImageFileTile) -> str:
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _with_rawmode(tile: ImageFileTile, rawmode: str) -> ImageFileTile:
    args = tile[3]
    new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    return type(tile)(tile[0], tile[1], tile[2], new_args)


def plan_resize(h: int, w: int, opts: Options) -> tuple[int, int, int, int] | None:
    """``(scaled_h, scaled_w, final_h, final_w)`` for --resize/--max-side, or None when the
    image keeps its size."""
    if opts.max_side is not None:
        scale = opts.max_side / max(h, w)
        if scale >= 1:
            return None
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        return sh, sw, sh, sw
    if opts.resize is None or (w, h) == opts.resize:
        return None
    tw, th = opts.resize
    if opts.resize_mode == "stretch":
        return th, tw, th, tw
    cover = opts.resize_mode == "fill"
    scale = max(tw / w, th / h) if cover else min(tw / w, th / h)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if opts.resize_mode == "fit":
        return None if (sh, sw) == (h, w) else (sh, sw, sh, sw)
    return sh, sw, th, tw


def resize(arr: np.ndarray, opts: Options) -> np.ndarray:
    """Apply --resize/--resize-mode or --max-side; returns ``arr`` itself when nothing changes."""
    plan = plan_resize(arr.shape[0], arr.shape[1], opts)
    if plan is None:
        return arr
    sh, sw, th, tw = plan
    scaled = _resample(arr, sw, sh)
    if (sh, sw) == (th, tw):
        return scaled
    if opts.resize_mode == "fill":  # centre crop
        top, left = (sh - th) // 2, (sw - tw) // 2
        return np.ascontiguousarray(scaled[top : top + th, left : left + tw])
    out = np.zeros((th, tw, arr.shape[2]), arr.dtype)  # pad: centred on black/transparent
    top, left = (th - sh) // 2, (tw - sw) // 2
    out[top : top + sh, left : left + sw] = scaled
    return out


def _resample(arr: np.ndarray, w: int, h: int) -> np.ndarray:
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
        info = np.iinfo(arr.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return np.ascontiguousarray(out.astype(arr.dtype))


def encode_png(arr: np.ndarray) -> bytes | None:
    """Lossless PNG of an HWC array, or None when PNG cannot hold it (32-bit data)."""
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
    if arr.dtype != np.uint8 or arr.shape[2] not in (1, 3):
        return None
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def read_source(path: Location) -> bytes:
    try:
        with storage.open_read(path) as f:
            data = f.read()
    except OSError as e:
        raise SkipImage("unreadable", e.strerror or str(e)) from None
    if not data:
        raise SkipImage("empty")
    return data


def load(path: Location, opts: Options) -> Loaded:
    """Read, validate and convert one file into its stored form.

    Raises NotAnImage (ignore it) or SkipImage (report it, with the reason).
    """
    data = read_source(path)
    with _pillow_limits():
        return _load(data, opts)


def _load(data: bytes, opts: Options) -> Loaded:
    sha = hashlib.sha256(data).hexdigest()
    im = open_image(data, opts.max_pixels)
    mode = MODES.get(im.mode)
    if mode is None:
        raise SkipImage("unsupported-mode", f"Pillow mode {im.mode!r}")
    if opts.format == "raw":
        dense = im.width * im.height * (mode.base + mode.alpha) * _itemsize(mode.dtype)
        if dense > MAX_PAYLOAD_BYTES:
            raise SkipImage("too-large", f"{dense} bytes of raw pixels")
    tiles = list(getattr(im, "tile", []))
    try:
        im.load()
    except Exception as e:
        raise _decode_error(e) from None
    # After load(): PNG's getexif() would otherwise load the pixels itself, out of reach of
    # the error handling above. (Pillow applies a TIFF's orientation while loading and
    # drops the tag, so TIFFs come out upright with orientation 1 here.)
    orientation = _orientation(im)
    src_format = im.format or ""
    channels = target_channels(im, mode, opts.channels)
    oriented = (im.width, im.height) if orientation >= 5 else (im.height, im.width)

    if (
        opts.format == "encoded"
        and _passes_through(im, channels)
        and plan_resize(*oriented, opts) is None
    ):
        height, width = oriented
        dtype = "uint16" if _png_bit_depth(data) == 16 else mode.dtype
        return _checked(
            Loaded(data, src_format.lower(), height, width, channels, dtype, sha, orientation)
        )

    natural = _sixteen_bit_colour(data, tiles) if im.mode in ("RGB", "RGBA") else None
    if natural is None:
        natural = natural_pixels(im)
    arr = shape_channels(orient(natural, orientation), mode.base, channels)
    resized = resize(arr, opts)
    h, w, c = resized.shape
    dtype = str(resized.dtype)

    note = None
    if opts.format == "encoded":
        if resized is not arr:
            note = "resized, so transcoded to PNG"
        elif src_format in ("JPEG", "PNG"):
            note = (
                f"{src_format} {im.mode} transcoded to PNG: TensorFlow would decode it differently"
            )
        else:
            note = f"{src_format} {im.mode} transcoded to PNG"
    stored: bytes | None = None
    fmt = opts.format
    if fmt == "jpeg":
        stored = encode_jpeg(resized, opts.quality)
        if stored is None:
            fmt, note = "png", f"stored as PNG: JPEG cannot hold {c}-channel {dtype}"
    if fmt in ("png", "encoded"):
        fmt = "png"
        stored = encode_png(resized)
        if stored is None:
            fmt, note = "raw", f"stored raw: PNG cannot hold {dtype}"
    if fmt == "raw":
        # Little-endian whatever the machine: what tf.io.decode_raw reads by default.
        stored = resized.astype(resized.dtype.newbyteorder("<"), copy=False).tobytes()
    assert stored is not None
    return _checked(Loaded(stored, fmt, h, w, c, dtype, sha, 1, note))


def _passes_through(im: Image.Image, channels: int) -> bool:
    if im.mode == "P" and channels == 4:
        # Palette + tRNS expands to real alpha in TensorFlow as in Pillow.
        return im.format == "PNG" and "transparency" in im.info
    return (im.format, im.mode, channels) in PASSTHROUGH


def _checked(loaded: Loaded) -> Loaded:
    if len(loaded.data) > MAX_PAYLOAD_BYTES:
        raise SkipImage("too-large", f"{len(loaded.data)} bytes stored as {loaded.format}")
    return loaded


def _itemsize(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)


def _png_bit_depth(data: bytes) -> int:
    """Bit depth from a PNG's IHDR chunk (0 if this is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 25:
        return 0
    return data[24]


def probe(path: Location, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, int]:
    """Cheap header look: ``(width, height, dense bytes per pixel)``.

    Used to plan shard counts. Raises NotAnImage or SkipImage like ``load``.
    """
    try:
        with storage.open_read(path) as f, _pillow_limits():
            if not f.read(1):
                raise NotAnImage()
            f.seek(0)
            im = open_image(f, max_pixels)
            mode = MODES.get(im.mode)
            if mode is None:
                return im.width, im.height, 3
            return im.width, im.height, (mode.base + mode.alpha) * _itemsize(mode.dtype)
    except OSError as e:
        raise SkipImage("unreadable", e.strerror or str(e)) from None
