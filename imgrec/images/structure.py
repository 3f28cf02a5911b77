"""Is a JPEG or PNG kept as its own bytes sure to decode? Answered from its structure, for a
small part of the cost of decoding it.

A pass-through file's pixels are never used when packing, only checked: a file that Pillow
cannot decode (cut short, broken data stream, bad markers) is skipped, with Pillow's own
words as the reason. These checks answer "yes" only for files laid out in the plain way
that Pillow (libjpeg, zlib) is known to decode without error; everything else answers
"don't know", and is then decoded by Pillow as before. So they can only save time, never
change what is accepted or rejected, or why.

- JPEG: baseline or extended sequential Huffman (SOF0/SOF1), 8-bit, 1 or 3 components, one
  interleaved scan; every marker segment well-formed (lengths, quantisation and Huffman
  tables that libjpeg's own checks accept, table selectors defined); the entropy-coded data
  holding only stuffed bytes and restart markers in sequence, then EOI. Bit errors inside
  the entropy-coded data are only warnings to libjpeg (it decodes them to wrong pixels),
  as they are to a full decode.
- PNG: not interlaced, its IDAT chunks one after another then IEND, the zlib stream complete
  (checksum included) holding exactly every scanline, each with a valid filter type.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib

# A marker inside entropy-coded data: 0xFF not followed by a stuffed 0x00.
_MARKER = re.compile(rb"\xff(?!\x00)")
_SOF = (0xC0, 0xC1)  # baseline, extended sequential (Huffman)
_SAMPLING = {(1, 1), (2, 1), (1, 2), (2, 2)}  # the luma sampling of common encoders
MAX_DIMENSION = 65500  # libjpeg's JPEG_MAX_DIMENSION


def jpeg_decodes(data: bytes) -> bool:
    """True if Pillow's decode of this JPEG surely succeeds; False: not known, decode it."""
    try:
        return _jpeg(data)
    except (IndexError, struct.error):  # a segment running past the end of the data
        return False


def _jpeg(data: bytes) -> bool:
    if data[:2] != b"\xff\xd8":
        return False
    pos = 2
    dc: set[int] = set()
    ac: set[int] = set()
    quant: set[int] = set()
    frame: list[tuple[int, int]] | None = None  # (component id, quant table)
    mcus = restart = 0
    while True:
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF):
            return False
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        body, pos = pos + 4, pos + 2 + length
        if length < 2 or pos > len(data):
            return False
        if 0xE0 <= marker <= 0xEF and marker != 0xEE or marker == 0xFE:
            continue  # APPn, COM (APP14, Adobe's colour transform, is left to Pillow)
        if marker == 0xDB:
            if not _dqt(data[body:pos], quant):
                return False
        elif marker == 0xC4:
            tables = _dht(data[body:pos])
            if tables is None:
                return False
            dc.update(tables[0])
            ac.update(tables[1])
        elif marker == 0xDD:
            if length != 4:
                return False
            (restart,) = struct.unpack_from(">H", data, body)
        elif marker in _SOF:
            if frame is not None:
                return False
            frame, mcus = _sof(data[body:pos]) or (None, 0)
            if frame is None:
                return False
        elif marker == 0xDA:
            if frame is None or not _sos(data[body:pos], frame, quant, dc, ac):
                return False
            return _entropy_then_eoi(data, pos, mcus, restart)
        else:  # progressive, arithmetic, DNL, JPG-n, stray markers: Pillow decides
            return False


def _dqt(seg: bytes, quant: set[int]) -> bool:
    at = 0
    while at < len(seg):
        precision, table = seg[at] >> 4, seg[at] & 15
        if precision != 0 or table > 3:  # 16-bit tables: left to Pillow
            return False
        at += 1 + 64 * (precision + 1)
        quant.add(table)
    return at == len(seg)


@functools.lru_cache(maxsize=64)  # an encoder writes the same tables into every file
def _dht(seg: bytes) -> tuple[frozenset[int], frozenset[int]] | None:
    """The (DC, AC) Huffman tables a DHT segment defines; None if libjpeg would refuse it."""
    dc: set[int] = set()
    ac: set[int] = set()
    at = 0
    while at < len(seg):
        kind, table = seg[at] >> 4, seg[at] & 15
        counts = seg[at + 1 : at + 17]
        if kind > 1 or table > 3 or len(counts) != 16:
            return None
        total = sum(counts)
        values = seg[at + 17 : at + 17 + total]
        if total > 256 or len(values) != total:
            return None
        # libjpeg's jpeg_make_d_derived_tbl: the codes must fit their lengths, none all ones
        code = 0
        for bits, count in enumerate(counts, 1):
            code += count
            if code >= 1 << bits:  # all-ones codes are not allowed
                return None
            code <<= 1
        if kind == 0 and any(v > 15 for v in values):
            return None
        (ac if kind else dc).add(table)
        at += 17 + total
    return (frozenset(dc), frozenset(ac)) if at == len(seg) else None


def _sof(seg: bytes) -> tuple[list[tuple[int, int]], int] | None:
    """The frame's components and its number of MCUs (None: not one these checks take)."""
    precision, height, width, count = struct.unpack_from(">BHHB", seg)
    if precision != 8 or count not in (1, 3) or len(seg) != 6 + 3 * count:
        return None
    if not (0 < height <= MAX_DIMENSION and 0 < width <= MAX_DIMENSION):
        return None
    components = []
    sampling = []
    for n in range(count):
        ident, hv, table = seg[6 + 3 * n : 9 + 3 * n]
        components.append((ident, table))
        sampling.append((hv >> 4, hv & 15))
    if len({c for c, _ in components}) != count:
        return None
    if count == 1:
        # one component: an MCU is one 8x8 block, whatever its sampling factors say
        if sampling[0] not in _SAMPLING:
            return None
        return components, -(-width // 8) * -(-height // 8)
    if sampling[0] not in _SAMPLING or sampling[1:] != [(1, 1), (1, 1)]:
        return None
    h, v = sampling[0]
    return components, -(-width // (8 * h)) * -(-height // (8 * v))


def _sos(
    seg: bytes, frame: list[tuple[int, int]], quant: set[int], dc: set[int], ac: set[int]
) -> bool:
    count = seg[0]
    if count != len(frame) or len(seg) != 4 + 2 * count:
        return False
    for n, (ident, table) in enumerate(frame):
        selector, tables = seg[1 + 2 * n], seg[2 + 2 * n]
        if selector != ident or table not in quant:
            return False
        if tables >> 4 not in dc or tables & 15 not in ac:
            return False
    return seg[-3:] == b"\x00\x3f\x00"  # Ss=0, Se=63, Ah=Al=0: sequential


def _entropy_then_eoi(data: bytes, pos: int, mcus: int, restart: int) -> bool:
    """Entropy-coded data from ``pos``: only restart markers, in sequence and as many as the
    restart interval asks for, then EOI."""
    expected = (mcus - 1) // restart if restart else 0
    seen = 0
    while True:
        found = _MARKER.search(data, pos)
        if found is None:
            return False
        at = found.start()
        marker = data[at + 1] if at + 1 < len(data) else -1
        if marker == 0xD9:
            return seen == expected
        if marker != 0xD0 + seen % 8 or seen >= expected:
            return False
        seen += 1
        pos = at + 2


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_decodes(data: bytes, chunk: int = 1 << 24) -> bool:
    """True if Pillow's decode of this PNG surely succeeds; False: not known, decode it.
    Inflates at most ``chunk`` bytes at a time: memory stays bounded whatever the image's
    size (and an ordinary photo is inflated in one go, the fastest)."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        return False
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if interlace != 0 or colour not in _CHANNELS or width == 0 or height == 0:
        return False
    stride = (width * depth * _CHANNELS[colour] + 7) // 8 + 1
    idat = _idat(data)
    if idat is None:
        return False
    inflate = zlib.decompressobj()
    total = 0
    try:
        while not inflate.eof:
            piece = inflate.decompress(idat, min(chunk, height * stride + 1 - total))
            idat = inflate.unconsumed_tail
            if not piece and not idat:
                break  # the stream ends early
            # each scanline's first byte is its filter type (0-4)
            if max(piece[(-total) % stride :: stride], default=0) > 4:
                return False
            total += len(piece)
            if total > height * stride:
                return False
    except zlib.error:
        return False
    return inflate.eof and total == height * stride and not inflate.unused_data


def _idat(data: bytes) -> bytes | None:
    """The IDAT chunks' data, if they run one after another up to an IEND that ends the
    file (whatever chunks come before them); else None."""
    pos, parts = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            return None
        if kind == b"IDAT":
            parts.append(data[pos + 8 : end - 4])
        elif parts:
            return b"".join(parts) if kind == b"IEND" and length == 0 else None
        pos = end
    return None


def png_bit_depth(data: bytes) -> int:
    """Bit depth from a PNG's IHDR chunk (0 if this is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 25:
        return 0
    return data[24]
