"""Pillow at arm's length: opening an image's header without touching Pillow's
process-wide settings, and reading the full 16 bits of colour PNGs and TIFFs, which Pillow
itself reduces to 8."""

from __future__ import annotations

import io
import re
import struct
from typing import TYPE_CHECKING, Any, BinaryIO

from PIL import Image, ImageFile

if TYPE_CHECKING:
    import numpy as np


def open_header(fp: BinaryIO) -> ImageFile.ImageFile | None:
    """``PIL.Image.open`` without its decompression-bomb check, which reads the module-wide
    ``PIL.Image.MAX_IMAGE_PIXELS``: imgrec checks --max-pixels itself, from the header, with
    no process-wide setting changed (so it is safe in threads). The plugins are tried in
    Pillow's own order, the common ones first; None when none recognises the file."""
    fp.seek(0)
    prefix = fp.read(16)
    tried: set[str] = set()
    for load_plugins in (Image.preinit, Image.init):
        load_plugins()
        for name in [i for i in Image.ID if i not in tried]:
            tried.add(name)
            factory, accept = Image.OPEN[name]
            try:
                # A string from accept() means "recognised, but support is not installed".
                recognised = True if accept is None else accept(prefix)
                if not recognised or isinstance(recognised, str):
                    continue
                fp.seek(0)
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # not this format after all: Pillow goes on to the next as well
    return None


def identify(data: bytes) -> ImageFile.ImageFile | None:
    """The image in ``data``, header read only; None when Pillow cannot make it out. For
    looking at stored records: no limits applied, nothing decoded."""
    try:
        return open_header(io.BytesIO(data))
    except Exception:  # Pillow plugins raise many types on malformed headers
        return None


ImageFileTile = Any  # Pillow's ImageFile._Tile, a named tuple
_SIXTEEN_BIT_SWAP = {"RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B"}
_SIXTEEN_BIT_SWAP.update({"RGBA;16B": "RGBA;16L", "RGBA;16L": "RGBA;16B"})


def sixteen_bit_colour(data: bytes, tiles: list[ImageFileTile]) -> np.ndarray | None:
    """Full 16-bit samples of a 48/64-bit colour PNG or TIFF, which Pillow reads as 8-bit.

    Pillow's unpacker keeps each sample's high byte; decoding the same tiles again with the
    byte order swapped yields the low bytes. Both passes go through Pillow's own decoders.
    """
    import numpy as np

    if not tiles or any(_rawmode(t) not in _SIXTEEN_BIT_SWAP for t in tiles):
        return None
    hi = open_header(io.BytesIO(data))
    lo = open_header(io.BytesIO(data))
    assert hi is not None and lo is not None  # the same bytes were opened before
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def embedded_sizes(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """``(width, height)`` of every image an ICO or ICNS file carries inside it, read from
    their own headers. Pillow opens these containers at the size their directory declares
    but decodes whatever the embedded image says: a 256x256 entry may hold a 20000x20000
    PNG. Checking these before loading keeps --max-pixels a real limit."""
    sizes = []
    start = data.find(PNG_SIGNATURE)
    while start >= 0:  # PNGs (ICNS ic07..ic14, ICO entries): IHDR width, height
        ihdr = data[start + 16 : start + 24]
        if len(ihdr) == 8:
            sizes.append(struct.unpack(">II", ihdr))
        start = data.find(PNG_SIGNATURE, start + 8)
    start = data.find(b"\xff\x4f\xff\x51")
    while start >= 0:  # JPEG 2000 codestreams (ICNS): SIZ Xsiz - XOsiz, Ysiz - YOsiz
        siz = data[start + 8 : start + 24]
        if len(siz) == 16:
            x, y, x0, y0 = struct.unpack(">IIII", siz)
            sizes.append((max(0, x - x0), max(0, y - y0)))
        start = data.find(b"\xff\x4f\xff\x51", start + 4)
    if fmt == "ICO" and len(data) >= 6:  # BMP entries: their DIB header's width and height
        (count,) = struct.unpack("<H", data[4:6])
        for n in range(min(count, 4096)):
            entry = data[6 + 16 * n : 22 + 16 * n]
            if len(entry) < 16:
                break
            (offset,) = struct.unpack("<I", entry[12:16])
            dib = data[offset : offset + 12]
            if len(dib) == 12 and not data.startswith(PNG_SIGNATURE, offset):
                _, w, h = struct.unpack("<Iii", dib)
                sizes.append((abs(w), abs(h) // 2))  # the height counts the mask too
    return sizes


def gif_frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """``(width, height)`` each GIF frame reaches (its offset plus its size), read from the
    image descriptors: Pillow grows the image to hold the largest."""
    if data[:3] != b"GIF" or len(data) < 13:
        return []
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    sizes: list[tuple[int, int]] = []
    while pos < len(data) and data[pos] != 0x3B and len(sizes) < 4096:
        if data[pos] == 0x2C and pos + 10 <= len(data):
            x, y, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            sizes.append((x + w, y + h))
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # + LZW code size
        elif data[pos] == 0x21:
            pos += 2
        else:
            return sizes  # not a block: stop reading
        while pos < len(data) and data[pos]:  # sub-blocks up to the terminator
            pos += data[pos] + 1
        pos += 1
    return sizes


def over_pillow_limit(e: BaseException, max_pixels: int, data: bytes | None) -> str | None:
    """A skip reason's detail for Pillow's own decompression-bomb guard, which fires inside
    some loaders (a GIF frame, an image inside an ICO or ICNS) at its process-wide limit:
    the image's size and the limit in force, the user's --max-pixels where the image is over
    it. None if ``e`` does not say the sizes."""
    found = re.search(r"\((\d+) pixels\).*?(\d+) pixels", str(e))
    if found is None:
        return None
    pixels, limit = int(found[1]), int(found[2])
    sizes = gif_frame_sizes(data) + embedded_sizes(data, "ICO") if data else []
    size = next((f"{w}x{h}" for w, h in sizes if w * h == pixels), f"{pixels}-pixel")
    if pixels > max_pixels:
        return f"it holds a {size} image, over --max-pixels {max_pixels}"
    return (
        f"it holds a {size} image: under --max-pixels {max_pixels}, but over Pillow's own"
        f" limit of {limit} pixels for it (twice PIL.Image.MAX_IMAGE_PIXELS, which imgrec"
        " leaves to the application)"
    )
