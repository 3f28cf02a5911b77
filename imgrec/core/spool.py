"""Sequences kept in files, so that a pack's memory does not grow with the number of images
(the local executor's and the Beam driver's listing, scan and plan).

``Disk(folder)`` makes them in a folder of its own; ``MEMORY`` makes plain lists instead, so
code written against a ``Store`` runs the same on either. On disk, reads and writes go
through ``os.pread``/``os.pwrite``: nothing is mapped into the process, so its memory does
not grow with the length (the page cache holds the files). Random access costs a system
call, a few microseconds; numbers are held in memory up to ``HELD`` bytes per sequence.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import pickle
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, overload

T = TypeVar("T")
BLOCK = 1 << 16  # bytes read or buffered at a time
HELD = 1 << 18  # bytes of numbers a sequence holds in memory before it moves into its file
_CODES = {4: "I", 8: "Q"}  # array type codes by width
PROTOCOL = 5  # pickle's
RUN = 50_000  # values a sort holds in memory at a time


class Numbers(MutableSequence[int]):
    """Unsigned integers of ``width`` (4 or 8) bytes; grows by ``append``. Up to ``HELD``
    bytes of them are held in memory (a short sequence costs no system call); past that,
    they move into a file, and only a block of appends is buffered."""

    def __init__(self, path: Path, width: int) -> None:
        self.width = width
        self._path = path
        self._held: array[int] | None = array(_CODES[width])
        assert self._held.itemsize == width
        self._fd = -1
        self._len = 0
        self._buffer = bytearray()

    def append(self, value: int) -> None:
        if self._held is not None:
            self._held.append(value)
            self._len += 1
            if self._len * self.width >= HELD:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                self._buffer += self._held.tobytes()
                self._held = None
                self._flush()
            return
        self._buffer += value.to_bytes(self.width, "little")
        self._len += 1
        if len(self._buffer) >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            os.pwrite(self._fd, self._buffer, self._len * self.width - len(self._buffer))
            self._buffer.clear()

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...
    def __getitem__(self, i: int | slice) -> int | list[int]:
        if self._held is not None:
            return self._held[i] if isinstance(i, int) else list(self._held[i])
        if isinstance(i, slice):
            where = range(self._len)[i]
            return list(islice(self.iter_from(where.start), len(where)))
        self._flush()
        at = self._index(i)
        return int.from_bytes(os.pread(self._fd, self.width, at * self.width), "little")

    def __setitem__(self, i: Any, value: Any) -> None:
        if isinstance(i, slice):
            raise TypeError("Numbers takes one item at a time")
        if self._held is not None:
            self._held[i] = value
            return
        self._flush()
        os.pwrite(self._fd, int(value).to_bytes(self.width, "little"), self._index(i) * self.width)

    def __delitem__(self, i: Any) -> None:
        raise TypeError("Numbers only grow")

    def insert(self, index: int, value: int) -> None:
        if index != self._len:
            raise TypeError("Numbers only grow at the end")
        self.append(value)

    def _index(self, i: int) -> int:
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        return i

    def __iter__(self) -> Iterator[int]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[int]:
        """The numbers from position ``start`` on, read a block at a time."""
        if self._held is not None:
            yield from self._held[start:]
            return
        self._flush()
        end = self._len * self.width
        at = start * self.width
        while at < end:
            block = os.pread(self._fd, min(BLOCK, end - at), at)
            at += len(block)
            for k in range(0, len(block), self.width):
                yield int.from_bytes(block[k : k + self.width], "little")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)


class _ByPosition(Sequence[T], Generic[T]):
    """A sequence whose subclasses give ``_at(k)`` for 0 <= k < len: indices and slices as
    a list's."""

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        where = range(len(self))[i]  # negative indices, bounds and steps as for a list
        if isinstance(where, range):
            return [self._at(k) for k in where]
        return self._at(where)

    def _at(self, k: int) -> T:
        raise NotImplementedError


class Blobs(_ByPosition[bytes]):
    """Byte strings kept in a file, one after another (their starts in another), appended in
    order and read in order or by position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "w+b")  # noqa: SIM115 (closed by close())
        self._starts = Numbers(path.with_suffix(".at"), 8)
        self._end = 0

    def append(self, data: bytes) -> None:
        self._starts.append(self._end)
        self._file.write(data)
        self._end += len(data)

    def __len__(self) -> int:
        return len(self._starts)

    def _at(self, i: int) -> bytes:
        self._file.flush()
        start = self._starts[i]
        stop = self._starts[i + 1] if i + 1 < len(self._starts) else self._end
        return os.pread(self._file.fileno(), stop - start, start)

    def __iter__(self) -> Iterator[bytes]:
        self._file.flush()
        stops = itertools.chain(self._starts.iter_from(1), (self._end,))
        with open(self.path, "rb") as f:
            for start, stop in zip(self._starts, stops, strict=False):
                yield f.read(stop - start)

    def close(self) -> None:
        """Close the files, whose contents are thrown away: a write still buffered that fails
        (a full disk) does not matter any more, and the file is closed all the same."""
        with contextlib.suppress(OSError):
            self._file.close()
        self._starts.close()


class Values(_ByPosition[T]):
    """Values kept in a file (``encode`` makes a form of plain Python values, pickled; this
    process reads back only what it wrote itself; ``decode`` makes the value again),
    appended in order and read in order or by position."""

    def __init__(self, path: Path, encode: Callable[[T], Any], decode: Callable[[Any], T]) -> None:
        self._blobs = Blobs(path)
        self._encode, self._decode = encode, decode

    def append(self, value: T) -> None:
        self._blobs.append(pickle.dumps(self._encode(value), PROTOCOL))

    def __len__(self) -> int:
        return len(self._blobs)

    def _at(self, i: int) -> T:
        return self._decode(pickle.loads(self._blobs[i]))

    def __iter__(self) -> Iterator[T]:
        for data in self._blobs:
            yield self._decode(pickle.loads(data))

    def close(self) -> None:
        self._blobs.close()


class Picked(_ByPosition[T]):
    """``values[k]`` for each k in ``indices[start:stop]``, read when asked for."""

    def __init__(self, values: Sequence[T], indices: Sequence[int], start: int, stop: int) -> None:
        self._values, self._indices = values, indices
        self._start, self._stop = start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    def _at(self, k: int) -> T:
        return self._values[self._indices[self._start + k]]

    def __iter__(self) -> Iterator[T]:
        for k in range(self._start, self._stop):
            yield self._values[self._indices[k]]


class Span(_ByPosition[T]):
    """``values[start:stop]``, read when asked for."""

    def __init__(self, values: Sequence[T], start: int, stop: int) -> None:
        self._values, self._start, self._stop = values, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    def _at(self, k: int) -> T:
        return self._values[self._start + k]

    def __iter__(self) -> Iterator[T]:
        if isinstance(self._values, Numbers):
            return cast(Iterator[T], islice(self._values.iter_from(self._start), len(self)))
        return (self._values[k] for k in range(self._start, self._stop))


class Store(Protocol):
    """Where a run keeps its long sequences: in memory, or on disk."""

    def numbers(self, width: int = 4) -> MutableSequence[int]: ...

    def values(self, encode: Callable[[T], Any], decode: Callable[[Any], T]) -> Sequence[T]: ...

    def blobs(self) -> Sequence[bytes]: ...

    def span(self, values: Sequence[T], start: int, stop: int) -> Sequence[T]: ...

    def pick(
        self, values: Sequence[T], indices: Sequence[int], start: int, stop: int
    ) -> Sequence[T]: ...


def append(values: Sequence[T], value: T) -> None:
    """Append to a sequence a ``Store`` made (a list, or ``Values``)."""
    values.append(value)  # type: ignore[attr-defined]


class _Memory:
    def numbers(self, width: int = 4) -> MutableSequence[int]:
        return []

    def values(self, encode: Callable[[T], Any], decode: Callable[[Any], T]) -> Sequence[T]:
        return []

    def blobs(self) -> Sequence[bytes]:
        return []

    def span(self, values: Sequence[T], start: int, stop: int) -> Sequence[T]:
        return values[start:stop]

    def pick(
        self, values: Sequence[T], indices: Sequence[int], start: int, stop: int
    ) -> Sequence[T]:
        return tuple(values[k] for k in indices[start:stop])


MEMORY: Store = _Memory()


class Disk:
    """Sequences in files of a temporary folder of their own (in ``where``, or the system's
    temporary folder), removed by ``close``."""

    def __init__(self, where: Path | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="imgrec-spool-", dir=where))
        self._made: list[Numbers | Blobs | Values[Any]] = []
        # Removed also when the store is dropped unclosed (a run stopped by an error).
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def _path(self, suffix: str) -> Path:
        return self.folder / f"{len(self._made):06d}{suffix}"

    def numbers(self, width: int = 4) -> MutableSequence[int]:
        made = Numbers(self._path(".n"), width)
        self._made.append(made)
        return made

    def values(self, encode: Callable[[T], Any], decode: Callable[[Any], T]) -> Sequence[T]:
        made: Values[T] = Values(self._path(".values"), encode, decode)
        self._made.append(made)
        return made

    def blobs(self) -> Sequence[bytes]:
        made = Blobs(self._path(".bin"))
        self._made.append(made)
        return made

    def span(self, values: Sequence[T], start: int, stop: int) -> Sequence[T]:
        return Span(values, start, stop)

    def pick(
        self, values: Sequence[T], indices: Sequence[int], start: int, stop: int
    ) -> Sequence[T]:
        return Picked(values, indices, start, stop)

    def sort(
        self,
        values: Iterable[T],
        key: Callable[[T], Any],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
    ) -> Iterator[T]:
        """``values`` sorted by ``key``, holding at most ``RUN`` of them in memory: sorted
        runs are written to files, then merged."""
        runs: list[Sequence[T]] = []
        it = iter(values)
        while chunk := list(islice(it, RUN)):
            chunk.sort(key=key)
            kept = self.values(encode, decode)
            for value in chunk:
                append(kept, value)
            runs.append(kept)
            del chunk
        return heapq.merge(*runs, key=key)

    def close(self) -> None:
        """Close and remove every file (even when the disk is full: see ``Blobs.close``)."""
        for made in self._made:
            made.close()
        self._made.clear()
        self._remove()
