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
from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from ..core import storage
from ..core.storage import Location
from . import colour, decoders, extras, structure
from .formats import sniff
from .modes import MODES, Mode, inks, itemsize, natural_pixels, target_channels
from .pillow import embedded_sizes, open_header, over_pillow_limit, sixteen_bit_colour
from .pixels import orient, plan_resize, shape_channels
from .stored import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from .stored import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from .stored import REASONS as REASONS
from .stored import ImageOptions as ImageOptions
from .stored import Loaded as Loaded
from .stored import NotAnImage as NotAnImage
from .stored import SkipImage as SkipImage
from .stored import checked, store

if TYPE_CHECKING:
    import numpy as np

# Files whose content Pillow does not recognise are ignored, except that a file carrying one
# of these extensions is reported as skipped: it was probably meant to be an image.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm"
    " .tga .ico .jp2 .j2k .heic .heif .avif .jxl .psd .dds .pcx .sgi .icns".split()
)

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


def open_image(source: bytes | BinaryIO, max_pixels: int) -> Image.Image | extras.Opened:
    """Open (header only): with Pillow, or for HEIF and JPEG XL through their extra. Raises
    NotAnImage when the content is not an image imgrec knows, SkipImage when it cannot be
    opened (or is over ``max_pixels``)."""
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
        return _open_extra(source, data, max_pixels)
    if im.width * im.height > max_pixels:
        raise SkipImage(
            "too-many-pixels", f"{im.width}x{im.height} is over --max-pixels {max_pixels}"
        )
    return im


def _open_extra(source: BinaryIO, data: bytes | None, max_pixels: int) -> extras.Opened:
    kind = sniff(source)
    if kind is None:
        raise NotAnImage()
    if kind == "avif":
        raise SkipImage("unsupported-format", "install a Pillow built with AVIF")
    if data is None:
        source.seek(0)
        data = source.read()
    try:
        return extras.open_extra(kind, data, max_pixels)
    except extras.MissingExtra as e:
        raise SkipImage("needs-extra", str(e)) from None
    except extras.TooManyPixels as e:
        raise SkipImage("too-many-pixels", str(e)) from None
    except extras.Unreadable as e:
        raise _unreadable(e) from None


def _unreadable(e: extras.Unreadable) -> SkipImage:
    """A file cut short, as libheif ("end of file") and libjxl ("NEED_MORE_INPUT") say it."""
    text = str(e).lower()
    cut = any(w in text for w in ("end of file", "truncated", "need_more_input"))
    return SkipImage("truncated" if cut else "corrupt", str(e))


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


def load_bytes(
    data: bytes, opts: ImageOptions, opened: Image.Image | extras.Opened | None = None
) -> Loaded:
    """``load_file`` for an image file's bytes, wherever they came from; ``opened``: what
    ``open_image(data, opts.max_pixels)`` gave already (its header is not read again)."""
    sha = hashlib.sha256(data).hexdigest()
    im = opened if opened is not None else open_image(data, opts.max_pixels)
    if isinstance(im, extras.Opened):
        profile = colour.profile_of(im.icc)
        return _profiled(_load_extra(im, opts, sha, profile), profile, opts)
    profile = colour.profile_of(im.info.get("icc_profile"))
    loaded = _load_pillow(data, opts, im, sha, profile)
    return _profiled(loaded, profile, opts)


def _profiled(loaded: Loaded, profile: colour.Profile | None, opts: ImageOptions) -> Loaded:
    """``loaded`` with its source's profile class, and the profile itself when it describes
    the stored pixels (not converted to sRGB, its colour space theirs)."""
    if profile is None:
        return loaded
    kept = not (opts.color == "srgb" and profile.converts)
    describes = kept and profile.describes(1 if loaded.channels <= 2 else 3)
    return replace(loaded, profile=profile.kind, icc=profile.data if describes else None)


def _converting(im: Image.Image, profile: colour.Profile | None, opts: ImageOptions) -> bool:
    """Whether --color srgb converts the image's pixels: a profile other than sRGB, for
    pixels of its colour space."""
    if opts.color != "srgb" or profile is None or not profile.converts:
        return False
    if profile.space == "CMYK" or im.mode == "CMYK":
        return profile.space == im.mode
    mode = MODES.get(im.mode)
    if mode is None or im.mode in ("LAB", "HSV", "YCbCr", "I", "F"):  # not device pixels
        return False
    return profile.describes(mode.base)


def _load_extra(
    im: extras.Opened, opts: ImageOptions, sha: str, profile: colour.Profile | None
) -> Loaded:
    """An image an extra read (HEIF, JPEG XL): upright already, stored as --format asks
    (lossless PNG for ``encoded``: TensorFlow decodes neither format)."""
    try:
        natural = im.decode()
    except extras.Unreadable as e:
        raise _unreadable(e) from None
    except extras.Unsupported as e:
        raise SkipImage("unsupported-mode", str(e)) from None
    if opts.format == "raw" and natural.nbytes > MAX_PAYLOAD_BYTES:
        raise SkipImage("too-large", f"{natural.nbytes} bytes of raw pixels")
    c = natural.shape[2]
    base, bits = (1 if c <= 2 else 3), im.bits or 8 * natural.dtype.itemsize
    name = ("L" if base == 1 else "RGB") + ("A" if c in (2, 4) else "")
    what = f"{im.format} {name}" + (f" {bits}-bit" if bits != 8 else "")
    why = f"TensorFlow has no {im.format} decoder"
    if opts.color == "srgb" and profile is not None and profile.converts:
        if profile.describes(base):
            natural = _to_srgb(natural, profile)
            why += f"; {_converted(profile)}"
    channels = int(opts.channels) if opts.channels != "auto" else base
    if opts.channels == "auto" and c in (2, 4):
        top = 255 if natural.dtype.itemsize == 1 else 65535
        channels = 4 if int(natural[..., -1].min()) < top else base
    stored = store(shape_channels(natural, base, channels), opts, sha, what, False, None, why)
    if im.others:
        rest = f"its primary image packed, not the {im.others}"
        stored = replace(stored, note=f"{stored.note}; {rest}" if stored.note else rest)
    return stored


def _to_srgb(natural: np.ndarray, profile: colour.Profile) -> np.ndarray:
    try:
        return colour.to_srgb(natural, profile)
    except colour.NeedsExtra as e:
        raise SkipImage("needs-extra", str(e)) from None
    except colour.Unusable as e:
        raise SkipImage("corrupt", f"{e}; pack it with --color keep") from None


def _converted(profile: colour.Profile) -> str:
    named = f" ({profile.description})" if profile.description not in ("", profile.kind) else ""
    return f"converted from {profile.kind}{named} to sRGB (--color srgb)"


def _load_pillow(
    data: bytes, opts: ImageOptions, im: Image.Image, sha: str, profile: colour.Profile | None
) -> Loaded:
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
    convert = _converting(im, profile, opts)  # so not kept as it is, whatever else holds
    kept = None if convert else _kept_unchecked(im, data, mode, opts, sha)
    if kept is not None:
        return kept
    # Bytes kept as they are must decode in TensorFlow too (training decodes with it): a
    # file it would refuse is transcoded from Pillow's pixels instead, losslessly to PNG.
    refused = None
    if opts.format == "encoded" and im.format in ("JPEG", "PNG"):
        refused = decoders.refusal(data, im.format.lower())
    if not convert and _jpeg_kept(im, opts) and refused is None:
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
        return checked(Loaded(data, "jpeg", height, width, channels, dtype, sha, orientation))
    oriented = (im.width, im.height) if orientation >= 5 else (im.height, im.width)

    if (
        opts.format == "encoded"
        and not convert
        and refused is None
        and _passes_through(im, channels)
        and plan_resize(*oriented, opts.resizing) is None
        and not (opts.upright and orientation != 1)
    ):
        height, width = oriented
        dtype = "uint16" if structure.png_bit_depth(data) == 16 else mode.dtype
        return checked(
            Loaded(data, src_format.lower(), height, width, channels, dtype, sha, orientation)
        )

    natural = sixteen_bit_colour(data, tiles) if im.mode in ("RGB", "RGBA") else None
    if natural is None:  # a CMYK image to convert: its own inks, not Pillow's RGB of them
        natural = inks(im) if convert and im.mode == "CMYK" else natural_pixels(im)
    why = None
    if opts.upright and orientation != 1 and refused is None:
        why = f"EXIF orientation {orientation} applied, as its annotations need"
    if convert:
        assert profile is not None
        natural = _to_srgb(natural, profile)
        why = _converted(profile) + (f"; {why}" if why else "")
    arr = shape_channels(orient(natural, orientation), mode.base, channels)
    differs = src_format in ("JPEG", "PNG")
    stored = store(arr, opts, sha, f"{src_format} {im.mode}", differs, refused, why)
    return replace(stored, applied=orientation)


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
    return checked(Loaded(data, fmt, *oriented, channels, dtype, sha, orientation))


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


def facts(im: Image.Image | extras.Opened) -> tuple[int, int, int]:
    """What the plan needs from an opened image: ``(width, height, dense bytes per pixel)``
    (for an image an extra reads, its channels unknown until decoded: as for 3)."""
    if isinstance(im, extras.Opened):
        return im.width, im.height, 3 * (1 if im.bits in (0, 8) else 2)
    mode = MODES.get(im.mode)
    if mode is None:
        return im.width, im.height, 3
    return im.width, im.height, (mode.base + mode.alpha) * itemsize(mode.dtype)
