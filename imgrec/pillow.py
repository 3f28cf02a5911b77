"""Pillow at arm's length: opening an image's header without touching Pillow's
process-wide settings, and reading the full 16 bits of colour PNGs and TIFFs, which Pillow
itself reduces to 8."""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile


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
