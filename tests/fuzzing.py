"""Seeded damaged copies of real-looking JPEGs and PNGs, and the decoders that judge them.

``originals`` draws photo-like images (gradients, noise, shapes) in every mode imgrec keeps
(PNG: RGB, RGBA, L, LA, P, I;16, 1, some interlaced; JPEG: RGB and L, some progressive);
``variants`` damages them the ways files are damaged: cut at any point, bits flipped in the
headers and in the data, 64-byte blocks zeroed, chunks and segments dropped or doubled,
end markers (IEND, EOI) missing, chunk CRCs wrong, data after the end, unknown chunks, and,
with valid CRCs, zlib streams flipped, cut short, too long or split. Every PNG original also
gets one copy without its IEND chunk and every JPEG one without its EOI marker.

``tensorflow_decodes`` decodes as ``imgrec.dataset`` does (decode_png and decode_jpeg at the
declared channels, JPEG with INTEGER_ACCURATE at full and 1/8 scale) and checks the size.
``benchmarks/fuzz_decoders.py`` prints the counts over many seeds.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

PNG_MODES = ["RGB", "RGBA", "L", "LA", "P", "I;16", "1"]


def _picture(rng: np.random.Generator, w: int, h: int, mode: str) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 127 // (w + h)], -1
    )
    arr = np.clip(base + rng.integers(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.ellipse([x0, y0, x0 + w // 4, y0 + h // 4], fill=fill)
    if mode == "I;16":
        gray = np.asarray(im.convert("L")).astype(np.uint16) * 257
        return Image.frombytes("I;16", (w, h), gray.astype("<u2").tobytes())
    if mode == "RGBA":
        im = im.convert("RGBA")
        im.putalpha(Image.fromarray((x * 255 // max(1, w - 1)).astype(np.uint8)))
        return im
    if mode == "P":
        return im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return im.convert(mode)


def originals(seed: int, n: int) -> list[tuple[str, bytes]]:
    """``n`` undamaged files, a third of them PNG: ``(format, bytes)``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(40, 160)), int(rng.integers(30, 120))
        buf = io.BytesIO()
        if i % 3 == 0:
            im = _picture(rng, w, h, PNG_MODES[i // 3 % len(PNG_MODES)])
            im.save(buf, "PNG", optimize=i % 5 == 0, interlace=i % 4 == 0)
            out.append(("png", buf.getvalue()))
        else:
            im = _picture(rng, w, h, "L" if i % 4 == 1 else "RGB")
            im.save(buf, "JPEG", quality=int(rng.integers(50, 98)), progressive=i % 7 == 0)
            out.append(("jpeg", buf.getvalue()))
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    pos, chunks = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks.append((pos, pos + 12 + length, kind))
        pos += 12 + length
    return chunks


def _jpeg_segments(data: bytes) -> list[tuple[int, int, bytes]]:
    pos, segments = 2, []
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xD9:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segments.append((pos, pos + 2 + length, bytes([data[pos + 1]])))
        if data[pos + 1] == 0xDA:
            break
        pos += 2 + length
    return segments


def without_end(kind: str, data: bytes) -> bytes:
    """The file without its IEND chunk (PNG) or EOI marker (JPEG)."""
    if kind == "png":
        return data[: next(s for s, _, k in _png_chunks(data) if k == b"IEND")]
    return data[:-2] if data.endswith(b"\xff\xd9") else data


OPS = ["cut", "flip-head", "flip-data", "zero", "drop", "double", "no-end", "crc", "trail",
       "insert", "zlib-flip", "zlib-cut", "zlib-length", "idat-split", "after-end"]  # fmt: skip


def damage(kind: str, data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One damaged copy: ``(what was done, bytes)``."""
    op = str(rng.choice(OPS))
    n, b = len(data), bytearray(data)
    units = _png_chunks(data) if kind == "png" else _jpeg_segments(data)
    idat = [u for u in units if u[2] == b"IDAT"]
    first_data = (idat[0][0] if idat else n // 2) if kind == "png" else units[-1][1]
    if op == "cut":
        return op, data[: int(rng.integers(1, n))]
    if op in ("flip-head", "flip-data"):
        at = int(rng.integers(2, first_data) if op == "flip-head" else rng.integers(first_data, n))
        b[at] ^= 1 << int(rng.integers(0, 8))
        return op, bytes(b)
    if op == "zero":
        at = int(rng.integers(0, n - 64))
        b[at : at + 64] = bytes(64)
        return op, bytes(b)
    if op == "no-end":
        return op, without_end(kind, data)
    if op == "trail":
        return op, data + rng.integers(0, 256, int(rng.integers(1, 200)), np.uint8).tobytes()
    start, end, name = units[int(rng.integers(0, len(units)))]
    label = f"{op} {name.decode('latin-1') if kind == 'png' else name.hex()}"
    if op == "drop":
        return label, data[:start] + data[end:]
    if op == "double":
        return label, data[:end] + data[start:end] + data[end:]
    if op == "crc":
        b[end - 1 if kind == "png" else start + 3] ^= 1  # a JPEG's segment length instead
        return label, bytes(b)
    if op == "insert":
        if kind == "jpeg":
            return op, data[:end] + b"\xff\xfe\x00\x0c" + bytes(10) + data[end:]
        chunk_type = [b"teXt", b"zzZz", b"ABCD"][int(rng.integers(0, 3))]
        return f"insert {chunk_type.decode()}", data[:end] + _chunk(chunk_type, bytes(10)) + data[
            end:
        ]
    if kind == "jpeg" or not idat:
        return "unchanged", data
    return op, _zlib_damage(op, data, idat, rng)


def _zlib_damage(op: str, data: bytes, idat: list[tuple[int, int, bytes]], rng: Any) -> bytes:
    """Damage under valid CRCs: the zlib stream itself, or how it is cut into chunks."""
    first, last = idat[0][0], idat[-1][1]
    stream = b"".join(data[s + 8 : e - 4] for s, e, _ in idat)
    if op == "after-end":
        return data + _chunk([b"IDAT", b"tEXt", b"IEND"][int(rng.integers(0, 3))], b"xy")
    if op == "zlib-flip":
        flipped = bytearray(stream)
        flipped[int(rng.integers(0, len(flipped)))] ^= 1 << int(rng.integers(0, 8))
        return data[:first] + _chunk(b"IDAT", bytes(flipped)) + data[last:]
    if op == "zlib-cut":
        return (
            data[:first]
            + _chunk(b"IDAT", stream[: int(rng.integers(0, len(stream)))])
            + data[last:]
        )
    if op == "zlib-length":
        raw = zlib.decompress(stream)
        more = int(rng.integers(1, 50))
        raw = raw + bytes(more) if rng.integers(0, 2) else raw[: max(0, len(raw) - more)]
        return data[:first] + _chunk(b"IDAT", zlib.compress(raw)) + data[last:]
    at = int(rng.integers(0, len(stream) + 1))  # idat-split
    between = _chunk(b"tEXt", b"a\0b") if rng.integers(0, 2) else b""
    return (
        data[:first]
        + _chunk(b"IDAT", stream[:at])
        + between
        + _chunk(b"IDAT", stream[at:])
        + data[last:]
    )


def variants(seed: int, n: int, per: int) -> Iterator[tuple[str, str, bytes]]:
    """``(format, what was done, bytes)``: for each of ``n`` originals, its copy without the
    end marker and ``per`` seeded damaged copies."""
    rng = np.random.default_rng(seed + 1)
    for kind, data in originals(seed, n):
        yield kind, "no-end", without_end(kind, data)
        for _ in range(per):
            yield kind, *damage(kind, data, rng)


def pillow_decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:  # whatever Pillow raises, it did not decode
        return False


def tensorflow_decodes(tf: Any, data: bytes, fmt: str, shape: tuple[int, int, int] | None) -> bool:
    """Whether TensorFlow decodes ``data`` as imgrec.dataset would, to ``shape`` (H, W, C, as
    stored or oriented either way) if given; without a shape, by content at any size."""
    try:
        if shape is None:
            tf.io.decode_image(data, expand_animations=False)
            return True
        h, w, c = shape
        if fmt == "png":
            sixteen = data[24:25] == b"\x10"
            image = tf.io.decode_png(data, channels=c, dtype=tf.uint16 if sixteen else tf.uint8)
            if not sixteen and c in (1, 3):  # the one decoder for mixed JPEG and PNG
                tf.io.decode_jpeg(data, channels=c)
        else:
            image = tf.io.decode_jpeg(data, channels=c, dct_method="INTEGER_ACCURATE")
            tf.io.decode_jpeg(data, channels=c, ratio=8, dct_method="INTEGER_ACCURATE")
        return tuple(image.shape) in ((h, w, c), (w, h, c))
    except (tf.errors.OpError, ValueError):
        return False
