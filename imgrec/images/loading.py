"""Open, sniff and normalise one image with Pillow, and produce what a record stores.

Every decision about pixels lives here: which Pillow modes become which channels and
dtype (the table in docs/pixel-rules.md is checked against ``MODES``), when the source
bytes can be kept as they are (``PASSTHROUGH``), how anything else is transcoded, resized
and oriented, and why an image is skipped (``REASONS``, also checked against
docs/pixel-rules.md).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from ..core import storage
from ..core.storage import Location
from . import decoders, structure
from .formats import unpackable
from .modes import MODES, Mode, itemsize, natural_pixels, target_channels
from .pillow import embedded_sizes, open_header, over_pillow_limit, sixteen_bit_colour
from .pixels import Resize, encode_jpeg, encode_png, orient, plan_resize, resize, shape_channels

if TYPE_CHECKING:
    import numpy as np

# Pillow's own default limit (about 89.5 megapixels), used as imgrec's default for --max-pixels.
DEFAULT_MAX_PIXELS = 89_478_485
# protobuf refuses messages of 2 GiB and more; keep room for the other features.
MAX_PAYLOAD_BYTES = 2**31 - 1 - 2**16

# Files whose content Pillow does not recognise are ignored, except that a file carrying one
# of these extensions is reported as skipped: it was probably meant to be an image.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm"
    " .tga .ico .jp2 .j2k .heic .heif .avif .jxl .psd .dds .pcx .sgi .icns".split()
)

# Why an image is skipped. A reason in the manifest reads "<code>: <detail>".
REASONS = {
    "empty": "the file has 0 bytes",
    "not-an-image": "the extension says image, but Pillow does not recognise the content",
    "unreadable": "the file cannot be read (permissions, I/O error)",
    "broken-symlink": "a symbolic link to nothing, with an image extension",
    "path-too-long": "the path is longer than the system opens (PATH_MAX); move it higher up",
    "missing": "named by --from-list, but there is no such file",
    "truncated": "the image data ends early (a partial download or copy)",
    "corrupt": "Pillow cannot decode the image data",
    "bad-annotation": "its annotations cannot be used as they are",
    "too-many-pixels": "more pixels than --max-pixels; not decoded",
    "unsupported-mode": "a Pillow mode imgrec has no rule for",
    "unsupported-format": (
        "an image in a format imgrec cannot pack yet (HEIC/HEIF, JPEG XL), found by its content"
        " whatever its extension"
    ),
    "too-large": "the stored record would pass protobuf's 2 GiB message limit",
    "failed": "an unexpected error in imgrec (please report it, with the file if you can)",
}


# (source format, Pillow mode, stored channels) whose original bytes TensorFlow's decoder
# (JPEG with dct_method="INTEGER_ACCURATE") turns into exactly the pixels ``to_array`` gives.
# Anything else is transcoded. Adding alpha is left out for bilevel, low-bit gray and
# palette PNGs: TensorFlow fills it with the source's bit-depth maximum (1, 3, 15), not 255.
# tests/images/test_loading.py checks every entry against TensorFlow.
PASSTHROUGH = frozenset(
    [("JPEG", "L", 1), ("JPEG", "L", 3), ("JPEG", "RGB", 3)]
    + [("PNG", m, c) for m in ("1", "L", "LA", "I;16") for c in (1, 3)]
    + [("PNG", m, 3) for m in ("P", "RGB", "RGBA")]
    + [("PNG", m, 4) for m in ("LA", "RGB", "RGBA", "I;16")]
)


class NotAnImage(Exception):
    """Pillow does not recognise the content as an image."""


class SkipImage(Exception):
    """An image that cannot be packed. ``str()`` is the manifest's reason: "<code>: <detail>"."""

    def __init__(self, code: str, detail: str = "") -> None:
        assert code in REASONS, code
        self.code = code
        super().__init__(f"{code}: {detail or REASONS[code]}")


@dataclass(frozen=True)
class ImageOptions:
    format: str = "encoded"  # encoded | png | jpeg | raw
    quality: int = 95
    channels: str = "auto"  # auto | 1 | 3 | 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize: tuple[int, int] | None = None  # (height, width)
    resize_mode: str = "stretch"
    max_side: int | None = None
    # Store every image as displayed (its EXIF orientation applied, none left to apply):
    # annotations then describe the pixels any reader decodes
    upright: bool = False

    @property
    def resizing(self) -> Resize:
        return Resize(self.resize, self.resize_mode, self.max_side)


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
    # (height, width) of the source as displayed (oriented), before any resize; None: the
    # stored size (the pixels were not resized)
    shown: tuple[int, int] | None = None
    applied: int = 1  # the source's EXIF orientation, when applied to the stored pixels


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _decode_error(e: BaseException, max_pixels: int, data: bytes | None) -> SkipImage:
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Pillow's own guard, inside a loader (a GIF frame, an image inside ICO or ICNS)
        return SkipImage("too-many-pixels", over_pillow_limit(e, max_pixels, data) or _describe(e))
    text = str(e).lower()
    if "truncated" in text or "premature end" in text or isinstance(e, EOFError):
        return SkipImage("truncated", _describe(e))
    return SkipImage("corrupt", _describe(e))


def open_image(source: bytes | BinaryIO, max_pixels: int) -> Image.Image:
    """Open (header only). Raises NotAnImage when Pillow does not recognise the content."""
    data = source if isinstance(source, bytes) else None
    if isinstance(source, bytes):
        if not source:
            raise NotAnImage()
        source = io.BytesIO(source)
    try:
        im = open_header(source)
    except Exception as e:  # Pillow plugins raise many types on malformed headers
        raise _decode_error(e, max_pixels, data) from None
    if im is None:
        what = unpackable(source)
        raise NotAnImage() if what is None else SkipImage("unsupported-format", what)
    if im.width * im.height > max_pixels:
        raise SkipImage(
            "too-many-pixels", f"{im.width}x{im.height} is over --max-pixels {max_pixels}"
        )
    return im


def _orientation(im: Image.Image, unloaded: bool = False) -> int:
    """The EXIF orientation (1..8); anything unreadable or out of range counts as 1.
    ``unloaded``: Image.getexif, not PngImageFile's, which would decode the pixels first."""
    try:
        value = (Image.Image.getexif(im) if unloaded else im.getexif()).get(0x0112, 1)
    except Exception:  # corrupt EXIF must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_source(path: Location) -> bytes:
    try:
        with storage.open_read(path) as f:
            data = f.read()
    except OSError as e:
        raise SkipImage("unreadable", e.strerror or str(e)) from None
    if not data:
        raise SkipImage("empty")
    return data


def load_file(path: Location, opts: ImageOptions) -> Loaded:
    """Read, validate and convert one file into its stored form.

    Raises NotAnImage (ignore it) or SkipImage (report it, with the reason).
    """
    return load_bytes(read_source(path), opts)


def load_bytes(data: bytes, opts: ImageOptions, opened: Image.Image | None = None) -> Loaded:
    """``load_file`` for an image file's bytes, wherever they came from; ``opened``: what
    ``open_image(data, opts.max_pixels)`` gave already (its header is not read again)."""
    sha = hashlib.sha256(data).hexdigest()
    im = opened if opened is not None else open_image(data, opts.max_pixels)
    mode = MODES.get(im.mode)
    if mode is None:
        raise SkipImage("unsupported-mode", f"Pillow mode {im.mode!r}")
    if opts.format == "raw":
        dense = im.width * im.height * (mode.base + mode.alpha) * itemsize(mode.dtype)
        if dense > MAX_PAYLOAD_BYTES:
            raise SkipImage("too-large", f"{dense} bytes of raw pixels")
    if im.format in ("ICO", "ICNS"):
        for w, h in embedded_sizes(data, im.format):
            if w * h > opts.max_pixels:
                raise SkipImage(
                    "too-many-pixels",
                    f"it holds a {w}x{h} image, over --max-pixels {opts.max_pixels}",
                )
    tiles = list(getattr(im, "tile", []))
    width, height = im.size
    kept = _kept_unchecked(im, data, mode, opts, sha)
    if kept is not None:
        return kept
    # Bytes kept as they are must decode in TensorFlow too (training decodes with it): a
    # file it would refuse is transcoded from Pillow's pixels instead, losslessly to PNG.
    refused = None
    if opts.format == "encoded" and im.format in ("JPEG", "PNG"):
        refused = decoders.refusal(data, im.format.lower())
    if _jpeg_kept(im, opts) and refused is None:
        # Its pixels are only checked, not stored: decoded at 1/8 scale, every entropy-coded
        # byte is still read and checked (truncation, corrupt data, bad markers), for about
        # 60% of the cost of a full decode.
        im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
    try:
        im.load()
    except Exception as e:
        raise _decode_error(e, opts.max_pixels, data) from None
    # After load(): PNG's getexif() would otherwise load the pixels itself, out of reach of
    # the error handling above. (Pillow applies a TIFF's orientation while loading and
    # drops the tag, so TIFFs come out upright with orientation 1 here.)
    orientation = _orientation(im)
    src_format = im.format or ""
    channels = target_channels(im, mode, opts.channels)
    if im.size != (width, height):  # a draft decode: nothing below may use its pixels
        oriented = (width, height) if orientation >= 5 else (height, width)
        height, width = oriented
        assert _passes_through(im, channels) and plan_resize(*oriented, opts.resizing) is None
        dtype = mode.dtype
        return _checked(Loaded(data, "jpeg", height, width, channels, dtype, sha, orientation))
    oriented = (im.width, im.height) if orientation >= 5 else (im.height, im.width)

    if (
        opts.format == "encoded"
        and refused is None
        and _passes_through(im, channels)
        and plan_resize(*oriented, opts.resizing) is None
        and not (opts.upright and orientation != 1)
    ):
        height, width = oriented
        dtype = "uint16" if structure.png_bit_depth(data) == 16 else mode.dtype
        return _checked(
            Loaded(data, src_format.lower(), height, width, channels, dtype, sha, orientation)
        )

    natural = sixteen_bit_colour(data, tiles) if im.mode in ("RGB", "RGBA") else None
    if natural is None:
        natural = natural_pixels(im)
    arr = shape_channels(orient(natural, orientation), mode.base, channels)
    differs = src_format in ("JPEG", "PNG")
    why = None
    if opts.upright and orientation != 1 and refused is None:
        why = f"EXIF orientation {orientation} applied, as its annotations need"
    stored = store(arr, opts, sha, f"{src_format} {im.mode}", differs, refused, why)
    return replace(stored, applied=orientation)


def store(
    arr: np.ndarray,
    opts: ImageOptions,
    sha: str,
    what: str,
    tf_differs: bool,
    refused: str | None = None,
    why: str | None = None,
) -> Loaded:
    """Pixels (oriented, with their channels) resized and encoded as --format asks.
    ``refused``: why TensorFlow would refuse the source's own bytes, for the note; ``why``:
    another reason they are not kept."""
    resized = resize(arr, opts.resizing)
    h, w, c = resized.shape
    dtype = str(resized.dtype)

    note = None
    if opts.format == "encoded":
        if resized is not arr:
            note = "resized, so transcoded to PNG"
        elif refused is not None:
            note = f"{what} transcoded to PNG: TensorFlow would refuse its bytes ({refused})"
        elif why is not None:
            note = f"{what} transcoded to PNG: {why}"
        elif tf_differs:
            note = f"{what} transcoded to PNG: TensorFlow would decode it differently"
        else:
            note = f"{what} transcoded to PNG"
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
    shown = (arr.shape[0], arr.shape[1]) if resized is not arr else None
    return _checked(Loaded(stored, fmt, h, w, c, dtype, sha, 1, note, shown))


def _kept_unchecked(
    im: Image.Image, data: bytes, mode: Mode, opts: ImageOptions, sha: str
) -> Loaded | None:
    """A JPEG or PNG kept as its own bytes whose structure shows that Pillow decodes it
    (``validate``): stored without decoding it. None: load it as usual."""
    if opts.format != "encoded":
        return None
    if im.format == "JPEG":
        if not _jpeg_kept(im, opts) or not structure.jpeg_decodes(data):
            return None
        dtype = mode.dtype
    elif im.format == "PNG" and im.mode in ("1", "L", "I;16", "RGB"):
        # no alpha: the channels are known without the pixels
        if not _passes_through(im, target_channels(im, mode, opts.channels)):
            return None
        if not structure.png_decodes(data) or decoders.png_refusal(data, inflate=False):
            return None
        dtype = "uint16" if structure.png_bit_depth(data) == 16 else mode.dtype
    else:
        return None
    # The EXIF of a PNG that validate accepts is all before its image data, read with the
    # header: no need to decode the pixels for it.
    orientation = _orientation(im, unloaded=True)
    oriented = (im.width, im.height) if orientation >= 5 else (im.height, im.width)
    if plan_resize(*oriented, opts.resizing) is not None or opts.upright and orientation != 1:
        return None
    channels = target_channels(im, mode, opts.channels)
    fmt = im.format.lower()
    return _checked(Loaded(data, fmt, *oriented, channels, dtype, sha, orientation))


def _jpeg_kept(im: Image.Image, opts: ImageOptions) -> bool:
    """A JPEG that will be stored as its own bytes: known from its header alone (mode,
    channels asked for, size, and the EXIF orientation, which JPEG keeps in its header)."""
    if opts.format != "encoded" or im.format != "JPEG" or im.mode not in ("L", "RGB"):
        return False
    channels = MODES[im.mode].base if opts.channels == "auto" else int(opts.channels)
    orientation = _orientation(im)
    if opts.upright and orientation != 1:
        return False
    oriented = (im.width, im.height) if orientation >= 5 else (im.height, im.width)
    return _passes_through(im, channels) and plan_resize(*oriented, opts.resizing) is None


def _passes_through(im: Image.Image, channels: int) -> bool:
    if im.mode == "P" and channels == 4:
        # Palette + tRNS expands to real alpha in TensorFlow as in Pillow.
        return im.format == "PNG" and "transparency" in im.info
    return (im.format, im.mode, channels) in PASSTHROUGH


def _checked(loaded: Loaded) -> Loaded:
    if len(loaded.data) > MAX_PAYLOAD_BYTES:
        raise SkipImage("too-large", f"{len(loaded.data)} bytes stored as {loaded.format}")
    return loaded


def probe_file(path: Location, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, int]:
    """Cheap header look: ``(width, height, dense bytes per pixel)``.

    Used to plan shard counts. Raises NotAnImage or SkipImage like ``load_file``.
    """
    try:
        with storage.open_read(path) as f:
            if not f.read(1):
                raise NotAnImage()
            f.seek(0)
            return probe_bytes(f, max_pixels)
    except OSError as e:
        raise SkipImage("unreadable", e.strerror or str(e)) from None


def probe_bytes(
    data: bytes | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[int, int, int]:
    """``probe_file`` of an image file's bytes (or an open file)."""
    return facts(open_image(data, max_pixels))


def facts(im: Image.Image) -> tuple[int, int, int]:
    """What the plan needs from an opened image: ``(width, height, dense bytes per pixel)``."""
    mode = MODES.get(im.mode)
    if mode is None:
        return im.width, im.height, 3
    return im.width, im.height, (mode.base + mode.alpha) * itemsize(mode.dtype)
