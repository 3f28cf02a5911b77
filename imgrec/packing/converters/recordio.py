"""MXNet RecordIO (``.rec``, with its ``.idx`` or without).

Each record is framed as ``magic (0xCED7230A), lrecord, data, zero padding to 4 bytes``,
``lrecord`` holding the length (29 bits) and a continuation flag (3 bits): a payload in
which the magic occurs at a 4-byte boundary is split there into parts (flags 1, 2, ... 3),
and the magic goes back between the parts on reading. A payload starts with the 24-byte
``IRHeader`` (uint32 flag, float32 label, uint64 id, uint64 id2); with ``flag`` > 0, that
many float32 labels follow it (multi-label); then the encoded image.

Labels are whole class numbers (a float label that is not whole is refused); class names
come from --labels, or from the folder names of an im2rec ``.lst`` file (--lst), which
also gives each record its file name.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import BinaryIO

from ...core import storage
from ...core.errors import InputError
from ...core.storage import Location
from ...format.options import PackOptions
from ..discover import Ref, Walk
from .common import Found, walk_of

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2
LENGTH_BITS = (1 << 29) - 1


def _record_at(f: BinaryIO, where: Location, offset: int) -> bytes:
    """The whole payload of the record starting at ``offset`` (its parts joined)."""
    f.seek(offset)
    parts: list[bytes] = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"record at byte {offset} is cut short (truncated .rec)", str(where))
        magic, lrecord = struct.unpack("<II", head)
        if magic != MAGIC:
            raise InputError(f"no RecordIO magic at byte {f.tell() - 8}", str(where))
        flag, length = lrecord >> 29, lrecord & LENGTH_BITS
        data = f.read(length)
        if len(data) < length:
            raise InputError(f"record at byte {offset} is cut short (truncated .rec)", str(where))
        f.read(-length % 4)
        parts.append(data)
        if flag in (0, 3):
            return MAGIC_BYTES.join(parts)
        if flag not in (1, 2):
            raise InputError(f"record at byte {offset} has flag {flag}", str(where))


def _offsets(f: BinaryIO, where: Location, size: int) -> list[int]:
    """Where each record starts, by walking the framing (for a .rec without its .idx)."""
    offsets, offset = [], 0
    while offset < size:
        f.seek(offset)
        head = f.read(8)
        if len(head) < 8 or struct.unpack("<I", head[:4])[0] != MAGIC:
            raise InputError(f"no RecordIO magic at byte {offset}", str(where))
        (lrecord,) = struct.unpack("<I", head[4:])
        flag, length = lrecord >> 29, lrecord & LENGTH_BITS
        if flag in (0, 1):
            offsets.append(offset)
        offset += 8 + length + (-length % 4)
    return offsets


def _idx_of(rec: Location) -> Location | None:
    """The .idx beside the .rec, if there is one."""
    idx = storage.parse(str(rec)[: -len(".rec")] + ".idx") if str(rec).endswith(".rec") else None
    return idx if idx is not None and storage.size(idx) is not None else None


def _index(idx: Location) -> list[int]:
    """Record offsets from an .idx ("key<TAB>offset" lines), in file order."""
    with storage.open_read(idx) as f:
        lines = f.read().decode("ascii", "replace").splitlines()
    offsets = []
    for number, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip().isdigit():
            raise InputError(f"line {number} is not 'key<TAB>offset': {line!r}", str(idx))
        offsets.append(int(fields[1]))
    return sorted(set(offsets))


def _stale(idx: Location, what: str) -> InputError:
    return InputError(
        f"{what}: this .idx does not match its .rec; remove it (the .rec's framing is then"
        " walked) or rebuild it with im2rec",
        str(idx),
    )


def _lst(path: str) -> dict[int, tuple[list[float], str]]:
    """An im2rec list: ``index<TAB>label[<TAB>label...]<TAB>path`` per line."""
    entries = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the list ({e})", path) from None
    for number, line in enumerate(lines, 1):
        fields = line.rstrip("\n").split("\t")
        try:
            entries[int(fields[0])] = ([float(x) for x in fields[1:-1]], fields[-1])
        except (ValueError, IndexError):
            raise InputError(f"line {number} is not 'index<TAB>label<TAB>path'", path) from None
    return entries


def _files(src: Location) -> list[Location]:
    if isinstance(src, Path) and src.is_dir():
        found = sorted(p for p in src.iterdir() if p.name.endswith(".rec") and p.is_file())
        if not found:
            raise InputError("no .rec file here", str(src))
        return list(found)
    return [src]


def _header(payload: bytes, where: Location, offset: int) -> tuple[int, list[float], int]:
    """(flag, labels, id) of a record's IRHeader; the image starts after ``flag`` labels."""
    if len(payload) < IR_HEADER.size:
        raise InputError(f"record at byte {offset} is shorter than its header", str(where))
    flag, label, ident, _ = IR_HEADER.unpack_from(payload)
    if flag == 0:
        return 0, [label], ident
    if len(payload) < IR_HEADER.size + 4 * flag:
        raise InputError(
            f"record at byte {offset} says it has {flag} labels (IRHeader flag), more than"
            f" its {len(payload)} bytes hold; the .rec is damaged",
            str(where),
        )
    extra = payload[IR_HEADER.size : IR_HEADER.size + 4 * flag]
    return flag, list(struct.unpack(f"<{flag}f", extra)), ident


def listing(src: Location, opts: PackOptions) -> Walk:
    lst = _lst(opts.lst_file) if opts.lst_file else {}
    found = []
    files = _files(src)
    for rec in files:
        size = storage.size(rec)
        if size is None:
            raise InputError("no such .rec file", str(rec))
        idx = _idx_of(rec)
        with storage.open_read(rec) as f:
            offsets = _index(idx) if idx is not None else _offsets(f, rec, size)
            end = 0  # where the record before ended: an .idx must list every record
            for offset in offsets:
                if idx is not None and offset != end:
                    raise _stale(idx, _gap(offset, end, size))
                payload = _record_at(f, rec, offset)
                end = f.tell()
                flag, labels, ident = _header(payload, rec, offset)
                listed = lst.get(ident)
                name, text = "", ""
                if listed is not None:
                    name = listed[1]
                    text = name.split("/", 1)[0] if "/" in name else ""
                # Multi-label records keep every label (image/class/labels), no class.
                label = _class_number(labels, rec, offset) if flag == 0 else None
                if len(files) > 1 and not name:
                    name = f"{storage.name_of(rec)}/{ident:08d}"
                many = tuple(labels) if flag > 0 else ()
                ref = Ref("recordio", offset=offset, fields=(str(rec),), labels=many)
                found.append(Found(ref, name, label, text, len(payload)))
            if idx is not None and end != size:
                raise _stale(idx, f"it lists {len(offsets)} records, which end at byte {end}"
                                  f" of the .rec's {size}")  # fmt: skip
    return walk_of(src if len(files) == 1 else files[0], found, opts, 0)


def _gap(offset: int, end: int, size: int) -> str:
    if offset >= size:
        return f"offset {offset} is past the end of the .rec ({size} bytes)"
    if offset > end:
        return f"it lists no record at byte {end} of the .rec (the next it lists is at {offset})"
    return f"offset {offset} is inside the record that starts before it"


def _class_number(labels: list[float], where: Location, offset: int) -> int | None:
    """A record's one label as a class number."""
    first = labels[0]
    if first != first or first < 0:  # NaN or negative: unlabelled
        return None
    if math.isinf(first) or first != int(first):
        raise InputError(
            f"record at byte {offset} has label {first}, not a class number", str(where)
        )
    return int(first)


def read(container: Location, ref: Ref) -> bytes:
    rec = storage.parse(ref.fields[0]) if ref.fields else container
    with storage.open_read(rec) as f:
        payload = _record_at(f, rec, ref.offset)
    flag, _, _ = _header(payload, rec, ref.offset)
    return payload[IR_HEADER.size + 4 * flag :]
