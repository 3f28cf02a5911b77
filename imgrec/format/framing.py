"""TFRecord framing without TensorFlow.

Each record on disk is::

    uint64 length (little endian)
    uint32 masked CRC32C of the 8 length bytes
    bytes  data[length]
    uint32 masked CRC32C of data

This is byte-for-byte what ``tf.io.TFRecordWriter`` (no compression) writes. Index files
hold one line per record, ``"<offset> <size>"``: the offset of the length field and the size
of the whole framed record, the format NVIDIA DALI and the ``tfrecord`` package read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import google_crc32c

from ..core import storage
from ..core.errors import InputError, OutputError, ShardError
from ..core.storage import Location, atomic_file
from .layout import index_for, is_index_name

HEADER_SIZE = 12  # length + its CRC
FOOTER_SIZE = 4
# A record longer than this is not something imgrec (or TensorFlow's proto parser) reads:
# it guards against allocating memory for a corrupt or hostile length field.
MAX_RECORD_BYTES = 2**31 - 1

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes | memoryview) -> int:
    crc = int(google_crc32c.value(bytes(data)))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """The framed bytes of one record."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (length, struct.pack("<I", masked_crc(length)), data, struct.pack("<I", masked_crc(data)))
    )


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    records: int
    bytes: int
    sha256: str


class ShardWriter:
    """Write one shard and its index file atomically. Use as a context manager. Both are
    written as the records come: nothing is held per record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index_path = index_for(path)
        self._stack = contextlib.ExitStack()
        self._hash = hashlib.sha256()
        self._offset = 0
        self._records = 0

    def __enter__(self) -> ShardWriter:
        self._file = self._stack.enter_context(atomic_file(self.path))
        # Entered last, so renamed into place first: a shard under its final name always
        # has its index beside it.
        self._index = self._stack.enter_context(atomic_file(self.index_path))
        return self

    def write(self, data: bytes) -> None:
        self.write_framed(frame(data), [HEADER_SIZE + len(data) + FOOTER_SIZE])

    def write_framed(self, blob: bytes | memoryview, sizes: list[int]) -> None:
        """Append records framed already (by ``frame``); ``sizes`` are their lengths."""
        self._file.write(blob)
        self._hash.update(blob)
        for size in sizes:
            self._index.write(index_line(self._offset, size).encode())
            self._offset += size
        self._records += len(sizes)

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]

    @property
    def info(self) -> ShardInfo:
        return ShardInfo(self.path, self._records, self._offset, self._hash.hexdigest())


def index_line(offset: int, size: int) -> str:
    """One index line: offset of the record's length field, size of the framed record."""
    return f"{offset} {size}\n"


def write_index(shard: str | Location) -> Location:
    """(Re)build the index file of an existing shard (a local file or a URL); returns where
    it is.

    Walks the framing with both CRCs checked, so a damaged shard raises ShardError (naming
    the file, record and byte offset) and leaves any existing index alone. The result is
    byte-identical to the index ShardWriter writes for the same records.
    """
    where = Path(shard) if isinstance(shard, str) and not storage.is_url(shard) else shard
    if is_index_name(storage.name_of(where)):
        raise InputError("this is an index file; give the shard it belongs to", str(where))
    try:
        lines = [
            index_line(offset, HEADER_SIZE + len(data) + FOOTER_SIZE)
            for offset, data in read_records(where)
        ]
    except OSError as e:
        raise InputError(f"cannot read the shard ({e.strerror or e})", str(where)) from None
    index = index_for(where)
    try:
        folder = storage.Folder(storage.parent_of(where))
        folder.write(storage.name_of(index), "".join(lines).encode())
    except OSError as e:
        raise OutputError(f"{index}: cannot write the index ({e.strerror or e})") from None
    return index


def read_index(path: Location) -> list[tuple[int, int]]:
    """The ``(offset, size)`` pairs of an index file."""
    entries = []
    with storage.open_read(path) as f:
        text = f.read().decode("ascii", "replace")
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            shown = line if len(line) <= 40 else line[:40] + "..."
            raise InputError(
                f"line {number} is not '<offset> <size>': {shown!r}; it is no index file"
                " imgrec reads: write it again with imgrec index SHARDS",
                str(path),
            )
        entries.append((int(fields[0]), int(fields[1])))
    return entries


def _size(path: Location) -> int:
    found = storage.size(path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    return found


def is_record_start(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a TFRecord: a length field followed by
    its CRC, as every TFRecord file begins."""
    if len(head) < HEADER_SIZE:
        return False
    return bool(struct.unpack("<I", head[8:HEADER_SIZE])[0] == masked_crc(head[:8]))


@dataclass(frozen=True)
class Frame:
    """One record as found in a shard: its data, or what is wrong with it."""

    index: int
    offset: int
    data: bytes | None  # None when the framing around it cannot be trusted
    problem: str | None
    cut_short: bool = False  # the file ends before this frame does

    @property
    def size(self) -> int:
        """The framed record's size on disk (what its index line says)."""
        return HEADER_SIZE + len(self.data or b"") + FOOTER_SIZE


def _past_end(length: int) -> str:
    return f"record length {length} runs past the end of the file (truncated shard)"


def _read_frame(f: BinaryIO, index: int, offset: int, size: int | None) -> Frame:
    """The frame at ``offset``, where ``f`` is positioned. With the file's ``size``, a
    length that runs past it is refused before anything is allocated; without, a length
    over MAX_RECORD_BYTES is, and a short read finds the cut."""
    header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return Frame(index, offset, None, "truncated record header (shard cut short)", True)
    (length,) = struct.unpack("<Q", header[:8])
    if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
        return Frame(index, offset, None, "length CRC mismatch: the rest is unreadable")
    end = offset + HEADER_SIZE + length + FOOTER_SIZE
    if length > MAX_RECORD_BYTES or (size is not None and end > size):
        return Frame(
            index,
            offset,
            None,
            f"record length {length} runs past the end of the file (truncated shard)",
            True,
        )
    data = f.read(length)
    footer = f.read(FOOTER_SIZE)
    if len(data) < length or len(footer) < FOOTER_SIZE:
        return Frame(
            index,
            offset,
            None,
            f"record length {length} runs past the end of the file (truncated shard)",
            True,
        )
    ok = struct.unpack("<I", footer)[0] == masked_crc(data)
    return Frame(index, offset, data, None if ok else "data CRC mismatch (corrupt data)")


def frames(path: Location) -> Iterator[Frame]:
    """Walk a shard's framing and report every record, damaged or not; never raises for
    damage. Both CRCs are checked. A record whose data CRC fails is reported and the walk
    goes on (its length was sound); a bad length or a cut-off end stops the walk, as nothing
    after it can be found. Lengths are checked against the file size before anything is
    allocated. The one reader of the framing: every other reads through it.
    """
    size = _size(path)
    with storage.open_read(path) as f:
        index = offset = 0
        while offset < size:
            found = _read_frame(f, index, offset, size)
            yield found
            if found.data is None:
                return
            offset, index = offset + found.size, index + 1


def frame_at(path: Location, offset: int, index: int = 0) -> Frame:
    """The one record at byte ``offset`` (as an index file gives it), both CRCs checked:
    a positioned read, without walking the shard."""
    with storage.open_read(path) as f:
        f.seek(offset)
        return _read_frame(f, index, offset, None)


def frame_in(framed: bytes, index: int, offset: int) -> Frame:
    """One framed record already read whole (an index line's ``size`` bytes from its
    ``offset``), both CRCs checked as ``frames`` checks them; a length that runs past the
    bytes given is reported as a cut."""
    return _read_frame(io.BytesIO(framed), index, offset, offset + len(framed))


def read_records(path: Location) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for each record, both CRCs checked.

    Raises ShardError naming the file, record index and byte offset of the first problem.
    """
    for found in frames(path):
        if found.problem is not None or found.data is None:
            raise ShardError(found.problem or "unreadable", str(path), found.index, found.offset)
        yield found.offset, found.data
