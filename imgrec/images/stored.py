"""What a record stores of one image: the options that shape it (``ImageOptions``), its
stored form (``Loaded``), why an image is skipped (``SkipImage`` and its ``REASONS``, checked
against docs/pixel-rules.md), and ``store``, which encodes pixels as --format asks. Loading
(``images.loading``, ``images.foreign``) decides what to store; this is how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .pixels import Resize, encode_jpeg, encode_png, resize

if TYPE_CHECKING:
    import numpy as np

# Pillow's own default limit (about 89.5 megapixels), used as imgrec's default for --max-pixels.
DEFAULT_MAX_PIXELS = 89_478_485
# protobuf refuses messages of 2 GiB and more; keep room for the other features.
MAX_PAYLOAD_BYTES = 2**31 - 1 - 2**16

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
    "unsupported-format": "an AVIF image, which this Pillow cannot read (found by its content)",
    "needs-extra": (
        "an image imgrec reads only with an extra installed (HEIC/HEIF: imgrec[heif]; JPEG XL:"
        " imgrec[jxl]; a 16-bit image with a colour profile, under --color srgb: imgrec[color]);"
        " the reason names it"
    ),
    "too-large": "the stored record would pass protobuf's 2 GiB message limit",
    "failed": "an unexpected error in imgrec (please report it, with the file if you can)",
}


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
    color: str = "keep"  # keep | srgb: images with another ICC profile converted to sRGB

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
    profile: str = ""  # the class of the source's ICC profile (images.colour.KINDS); "": none
    icc: bytes | None = None  # that profile, when it describes the stored pixels


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
    return checked(Loaded(stored, fmt, h, w, c, dtype, sha, 1, note, shown))


def checked(loaded: Loaded) -> Loaded:
    if len(loaded.data) > MAX_PAYLOAD_BYTES:
        raise SkipImage("too-large", f"{len(loaded.data)} bytes stored as {loaded.format}")
    return loaded
