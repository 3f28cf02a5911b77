"""Checks of one record, shared by ``verify`` and the checked read path: the record
parses, follows the schema, and an encoded image's header matches what the record declares.
No TensorFlow needed."""

from __future__ import annotations

from dataclasses import dataclass

from ..images.decoders import refusal
from ..images.pillow import identify
from .schema import Record, SchemaError, parse


@dataclass(frozen=True)
class Problem:
    shard: str
    record: int | None
    offset: int | None
    message: str

    def __str__(self) -> str:
        where = self.shard
        if self.record is not None:
            where += f", record {self.record}"
        if self.offset is not None:
            where += f" (byte offset {self.offset})"
        return f"{where}: {self.message}"


def check_record(data: bytes, decode: bool = False) -> tuple[Record | None, str | None]:
    """Parse and check one record: ``(record, None)`` or ``(record or None, problem)``.

    ``decode`` also decodes an encoded image in full (with Pillow, which packing already
    held every image to) and applies the rules of what TensorFlow's decoders refuse that
    Pillow reads (``images.decoders``): a record that passes decodes in ``imgrec.dataset``.
    Image data damaged past a sound header (a cut-off JPEG, a PNG without IEND) is found
    here, before TensorFlow's decoder would stop a whole pipeline on it."""
    try:
        rec = parse(data, strict=True)
    except SchemaError as e:
        return None, str(e)
    if rec.format == "raw":
        return rec, None
    im = identify(rec.data)
    if im is None:
        return rec, f"image/encoded is not an image Pillow can read (image/format {rec.format})"
    fmt, (w, h) = (im.format or "").lower(), im.size
    if fmt != rec.format:
        return rec, f"image/format says {rec.format} but the bytes are {fmt or 'unknown'}"
    if rec.orientation >= 5:
        w, h = h, w
    if (h, w) != (rec.height, rec.width):
        return rec, f"image/shape says {rec.height}x{rec.width} but the image is {h}x{w}"
    if decode:
        try:
            im.load()
        except Exception as e:  # Pillow's decoders raise many types on damaged data
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return rec, f"the {rec.format} image data cannot be decoded ({text})"
        refused = refusal(rec.data, rec.format)
        if refused is not None:
            return rec, f"TensorFlow cannot decode this {rec.format}: {refused}"
    return rec, None
