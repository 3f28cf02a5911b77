"""Image formats Pillow does not read, named by their content: phones' HEIC/HEIF and JPEG
XL (read through an extra, ``images/extras.py``), and AVIF for a Pillow built without it.
Such a file is an image that was meant to be packed, so whatever its extension it is either
read through its extra or skipped with a reason that says what it is and what to do, rather
than called "not an image" (or, for a ``.jxl``, ignored)."""

from __future__ import annotations

from typing import BinaryIO

# ISO base media file format brands (the 'ftyp' box): HEIF's and AVIF's
HEIF_BRANDS = frozenset(b"heic heix hevc hevx heim heis hevm hevs mif1 mif2 msf1".split())
AVIF_BRANDS = frozenset({b"avif", b"avis"})
JXL_CODESTREAM = b"\xff\x0a"
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
HEAD = 64  # bytes enough to tell


def sniff(source: BinaryIO) -> str | None:
    """ "heif", "avif" or "jxl" when ``source`` holds one of these, else None (a stream that
    cannot go back to its start included)."""
    try:
        source.seek(0)
        head = source.read(HEAD)
    except (OSError, ValueError):
        return None
    if head.startswith(JXL_CONTAINER) or head.startswith(JXL_CODESTREAM):
        return "jxl"
    brands = _brands(head)
    if brands & HEIF_BRANDS and not brands & AVIF_BRANDS:
        return "heif"
    return "avif" if brands & AVIF_BRANDS else None


def _brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an 'ftyp' box at the start of ``head``."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return set()
    size = min(int.from_bytes(head[:4], "big"), len(head))
    found = {head[8:12]}
    found.update(head[i : i + 4] for i in range(16, size - 3, 4))
    return found


# JPEG XL's SizeHeader: a height, then a width given as an aspect ratio of it (or in full)
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def jxl_size(data: bytes) -> tuple[int, int, int] | None:
    """``(width, height, orientation)`` of a JPEG XL image, from its codestream's headers
    (the size as coded, and the orientation that turns it upright); None when the headers
    cannot be read. No pixels decoded: this is what --max-pixels is checked against."""
    stream = _codestream(data)
    if stream is None or not stream.startswith(JXL_CODESTREAM):
        return None
    bits = _Bits(stream[2:66])
    try:
        div8 = bits.read(1)  # both sides multiples of 8, coded in 5 bits
        height = (bits.read(5) + 1) * 8 if div8 else bits.u32()
        ratio = bits.read(3)
        if ratio == 0:
            width = (bits.read(5) + 1) * 8 if div8 else bits.u32()
        else:
            num, den = _RATIOS[ratio]
            width = height * num // den
        orientation = 1  # ImageMetadata: all_default, then extra_fields holds the orientation
        if not bits.read(1) and bits.read(1):
            orientation = 1 + bits.read(3)
    except IndexError:
        return None
    return width, height, orientation


def _codestream(data: bytes) -> bytes | None:
    """The codestream of a bare JPEG XL, or of the first 'jxlc'/'jxlp' box of its container."""
    if not data.startswith(JXL_CONTAINER):
        return data
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        start = pos + 8
        if size == 1 and pos + 16 <= len(data):  # a 64-bit size follows
            size, start = int.from_bytes(data[pos + 8 : pos + 16], "big"), pos + 16
        if kind == b"jxlc":
            return data[start:]
        if kind == b"jxlp":
            return data[start + 4 :]  # after its 4-byte index
        if size < 8:  # 0: the box runs to the end of the file (and is not the codestream)
            return None
        pos += size
    return None


class _Bits:
    """Bits of ``data`` read least significant first, as JPEG XL packs its headers."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "little")
        self.left = len(data) * 8

    def read(self, n: int) -> int:
        if n > self.left:
            raise IndexError("past the end of the header")
        out = self.value & ((1 << n) - 1)
        self.value >>= n
        self.left -= n
        return out

    def u32(self) -> int:
        """A dimension: a 2-bit selector of 9, 13, 18 or 30 bits, plus 1."""
        return self.read((9, 13, 18, 30)[self.read(2)]) + 1
