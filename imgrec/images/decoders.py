"""What TensorFlow's image decoders refuse that Pillow reads.

Training decodes with TensorFlow (libpng and libjpeg-turbo inside ``tf.io.decode_png`` and
``decode_jpeg``), while packing and checking decode with Pillow. A file kept as its own
bytes must decode in both. The two differ on PNG's chunk layer: Pillow reads on without an
``IEND`` chunk and does not check the CRC of every chunk, where libpng stops with "Invalid
PNG data". The rules below are libpng's, as measured by tests/images/test_decoders.py,
which packs seeded damaged copies of real-looking PNGs and JPEGs and decodes every kept one
with TensorFlow. For JPEG, Pillow and TensorFlow agree, but packing checks a kept JPEG by a
decode at 1/8 scale (faster), which can finish without the last bytes of a file cut short:
a JPEG without an EOI marker after its scan is decoded in full instead, and Pillow and
TensorFlow both refuse it.

``png_refusal`` reads the chunk headers and CRCs (a CRC32 pass over the file) and, with
``inflate``, counts the inflated image data without keeping it.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The critical chunks libpng knows. Any other chunk whose type starts with an upper-case
# letter is critical too, and libpng stops at it ("unknown critical chunk").
_KNOWN_CRITICAL = frozenset([b"IHDR", b"PLTE", b"IDAT", b"IEND"])


def refusal(data: bytes, fmt: str, inflate: bool = True) -> str | None:
    """Why TensorFlow would refuse this JPEG or PNG (``fmt``: "jpeg" or "png") that Pillow
    decodes; None if it would not."""
    if fmt == "png":
        return png_refusal(data, inflate)
    if fmt == "jpeg":
        return jpeg_refusal(data)
    return None


def jpeg_refusal(data: bytes) -> str | None:
    """Why TensorFlow's JPEG decoder could refuse this JPEG: no EOI marker after the start
    of its first scan. (An EOI before it, the end of an EXIF thumbnail, does not count;
    inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker.)"""
    scan = data.find(b"\xff\xda")
    if scan < 0 or data.find(b"\xff\xd9", scan) < 0:
        return "it has no EOI marker after its image data (the file is cut short)"
    return None


def png_refusal(data: bytes, inflate: bool = True) -> str | None:
    """Why TensorFlow's PNG decoder would refuse this PNG; None if its chunks are as libpng
    requires: IHDR first and once, every critical chunk's CRC right, no unknown critical
    chunk, one PLTE (before the image data) where the colour type needs one, the image
    data in consecutive IDAT chunks, and IEND, all within the file. Bytes after IEND are
    ignored, as libpng does.

    ``inflate`` also inflates the image data: Pillow accepts a zlib stream that ends before
    the last scanline (the rest stays black), libpng does not. (``structure.png_decodes``
    checks the stream already; a file it accepts needs ``inflate=False`` only.)"""
    if data[:8] != PNG_SIGNATURE:
        return "it does not start with the PNG signature"
    problem = _chunks(data)
    if problem is None and inflate:
        problem = _short_stream(data)
    return problem


def _chunks(data: bytes) -> str | None:
    """What is wrong with the chunks of a PNG, read up to IEND."""
    pos, colour = 8, -1
    seen: list[bytes] = []
    while True:
        if pos + 12 > len(data):
            return "it ends before its IEND chunk (the file is cut short or was not finished)"
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        name = kind.decode("latin-1")
        if end > len(data):
            return f"its {name} chunk runs past the end of the file"
        critical = not kind[0] & 0x20
        if critical and struct.unpack_from(">I", data, end - 4)[0] != zlib.crc32(
            data[pos + 4 : end - 4]
        ):
            return f"the CRC of its {name} chunk is wrong"
        if critical and kind not in _KNOWN_CRITICAL:
            return f"it holds an unknown critical chunk {name!r}"
        problem = _order(kind, seen, colour)
        if problem is not None:
            return problem
        if kind == b"IHDR" and length >= 10:
            colour = data[pos + 17]
        if kind == b"IEND":
            return None
        seen.append(kind)
        pos = end


def _order(kind: bytes, seen: list[bytes], colour: int) -> str | None:
    """What is wrong with a ``kind`` chunk coming after the chunks ``seen``."""
    if not seen and kind != b"IHDR":
        return "its first chunk is not IHDR"
    if kind == b"IHDR" and seen:
        return "it has a second IHDR chunk"
    if kind == b"PLTE" and (b"PLTE" in seen or b"IDAT" in seen):
        return "it has a PLTE chunk after another or after the image data"
    if kind == b"IDAT" and colour == 3 and b"PLTE" not in seen:
        return "it is a palette image without a PLTE chunk before its image data"
    if kind == b"IDAT" and b"IDAT" in seen and seen[-1] != b"IDAT":
        return "its image data (IDAT chunks) is split by another chunk"
    if kind == b"IEND" and b"IDAT" not in seen:
        return "it has no image data (IDAT) before IEND"
    return None


_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _short_stream(data: bytes, chunk: int = 1 << 24) -> str | None:
    """What is wrong with the zlib stream of a PNG whose chunks are sound: it must hold
    every scanline and then end (libpng reads it to its end and checks it); inflated
    ``chunk`` bytes at a time, so memory stays bounded."""
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    bits = depth * _SAMPLES.get(colour, 1)
    if interlace:
        passes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in _ADAM7]
    else:
        passes = [(width, height)]
    need = sum(h * (1 + (w * bits + 7) // 8) for w, h in passes if w > 0 and h > 0)
    counted = _inflated(data, len(data), chunk)
    if counted is None:
        # The stream breaks: what came before the break counts (an error loses the output
        # of its decompress call, so count again a byte at a time; only damaged files).
        counted = _inflated(data, 1, chunk) or (0, False)
    got, ended = counted
    if got < need:
        return "its image data ends before the last row (Pillow leaves the rest black)"
    if not ended:
        return "its zlib stream does not end after the last row (cut short, or damaged)"
    return None


def _inflated(data: bytes, step: int, chunk: int) -> tuple[int, bool] | None:
    """How many bytes the IDAT stream inflates to, fed ``step`` bytes at a time, and
    whether it ends; None if it breaks (with ``step`` 1: the count up to the break)."""
    inflate, got, pos = zlib.decompressobj(), 0, 8
    while pos + 8 <= len(data) and not inflate.eof:
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length] if kind == b"IDAT" else b""
        for at in range(0, len(body), step):
            pending = body[at : at + step]
            while pending and not inflate.eof:
                try:
                    got += len(inflate.decompress(pending, chunk))
                except zlib.error:
                    return (got, False) if step == 1 else None
                pending = inflate.unconsumed_tail
        pos += 12 + length
    return got, inflate.eof
