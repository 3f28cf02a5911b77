"""Each source read once: how the local executor packs a local SRC into encoded (or PNG,
JPEG) records. (Raw pixels are many times the size of their source: writing them twice
costs more than reading a header twice, so a raw pack scans headers, in the workers, and
then loads; ``probe_one`` is that scan's task.)

Scanning and packing are one pass over the files, in the worker processes: each file is
read once, and both what its header says (an image or not, skipped and why, its size: what
the plan needs) and its stored record come from that one read. The records are written,
serialized, into piece files in ``OUT/.imgrec-pieces.d/`` (one per batch of files, in listing
order); only their places and statistics go back to the driver. Once the plan is made from
those facts, each shard is written from the pieces in plan order (by the workers, a whole
shard each, when there are several shards), so its bytes are exactly those of writing it
straight from the images, for any number of workers.

Pixels never travel between processes. The price: the stored records are written twice
(into pieces, then into shards), and the pieces take as much room as the dataset until the
pack ends.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..discover import Item
from ..encode import Packed, ShardResult, Skipped, packed, write_shard
from ..images import NotAnImage, Options, SkipImage
from ..lock import cannot_write
from ..payloads import Portable, Probed, portable, probe, read_once, unportable
from ..schema import Record
from ..sharding import ShardSpec

BATCH = 64  # files per piece (at most)
OPEN_PIECES = 256  # piece files held open at once while a shard is written


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an image's serialized record is in the pieces, and what the statistics need of
    it (the main process holds one per image until the shards are written: kept small)."""

    piece: int
    offset: int
    size: int
    stored: int  # bytes of the image payload
    note: str | None
    shape: tuple[str, str, int, int, int, int]  # format, dtype, height, width, channels, orient.


# A Stored as the main process keeps it: packed into a few dozen bytes (a Stored object and
# its fields take about 0.45 KB); the object itself for what the packing cannot hold.
Kept = bytes | Stored
Result = Kept | Skipped
_PACKED = struct.Struct("<IQIIIIBBBBB")  # piece, offset, size, stored, h, w, c, orient., codes
_FORMATS = ("jpeg", "png", "raw")
_DTYPES = ("uint8", "uint16", "int32", "float32")


def kept(stored: Stored) -> Kept:
    """``stored``, packed (see ``Kept``)."""
    fmt, dtype, height, width, channels, orientation = stored.shape
    if fmt not in _FORMATS or dtype not in _DTYPES or max(height, width) >= 2**32:
        return stored
    if not (stored.size < 2**32 and stored.stored < 2**32 and channels < 256):
        return stored
    note = b"" if stored.note is None else stored.note.encode("utf-8", "surrogatepass")
    codes = (orientation, _FORMATS.index(fmt), _DTYPES.index(dtype), stored.note is not None)
    fixed = (stored.piece, stored.offset, stored.size, stored.stored, height, width, channels)
    return _PACKED.pack(*fixed, *codes) + note


def unkept(kept: Kept) -> Stored:
    """The Stored that ``kept`` packed."""
    if isinstance(kept, Stored):
        return kept
    piece, offset, size, stored, h, w, c, orientation, fmt, dtype, noted = _PACKED.unpack_from(kept)
    note = kept[_PACKED.size :].decode("utf-8", "surrogatepass") if noted else None
    return Stored(piece, offset, size, stored, note, (_FORMATS[fmt], _DTYPES[dtype], h, w, c,
                                                      orientation))  # fmt: skip


@dataclass
class Pieces:
    """The first pass's records (files in ``folder``) and each image's result, by path."""

    folder: Path
    results: dict[str, Result] = field(default_factory=dict)


Batch = tuple[Path, int, list[Item], Options]


def batches(items: Sequence[Item], pieces: Pieces, opts: Options, workers: int) -> list[Batch]:
    """The first pass's tasks, for ``read_batch``: the items in listing order, in batches."""
    size = max(1, min(BATCH, len(items) // (workers * 8)))
    return [
        (pieces.folder, n, list(items[start : start + size]), opts)
        for n, start in enumerate(range(0, len(items), size))
    ]


Seen = tuple[Portable, Result | None, tuple[int, int] | None]  # and the file's (size, mtime)


def probes(
    tasks: list[Batch], done: Iterator[list[Seen]], pieces: Pieces, items: Sequence[Item]
) -> Iterator[Probed]:
    """From ``read_batch``'s results (``done``, in task order): what ``images.probe`` would
    answer for each item, in order; each image's result is kept in ``pieces``.

    ``items`` is the listing the answers are for, as ``scan.classify`` walks it: each item in
    it is replaced by one carrying the size and time of its file that the worker saw, a batch
    ahead of that walk (the first batch before this returns), so that the main process does
    not look each file up again for the size estimate and the journal. (Were an item taken
    before it is replaced, or ``items`` not a list, it would only be looked up as before.)"""
    results = zip(tasks, done, strict=True)
    start = 0

    def fetch() -> list[tuple[Item, Seen]] | None:
        nonlocal start
        pair = next(results, None)
        if pair is None:
            return None
        (_, _, batch, _), seen = pair
        for n, (item, (_, _, stat)) in enumerate(zip(batch, seen, strict=True)):
            if stat is not None and item.stat is None and isinstance(items, list):
                items[start + n] = replace(item, stat=stat)
        start += len(batch)
        return list(zip(batch, seen, strict=True))

    def answers(current: list[tuple[Item, Seen]] | None) -> Iterator[Probed]:
        while current is not None:
            following = None
            for n, (item, (answer, result, _)) in enumerate(current, 1):
                if result is not None:
                    pieces.results[item.rel] = result
                if n == len(current):
                    following = fetch()
                yield unportable(answer)
            current = following

    return answers(fetch())


def read_batch(task: Batch) -> list[Seen]:
    """In a worker: one batch of files, each read once, its record written into the piece."""
    folder, piece, items, opts = task
    seen: list[Seen] = []
    try:  # only the piece can raise OSError here: a source that cannot be read is skipped
        with open(folder / f"{piece:06d}.rec", "wb") as f:
            offset = 0
            for item in items:
                probed, loaded = read_once(item, opts)
                stat = _stat(item)
                if loaded is None:
                    seen.append((portable(probed), None, stat))
                    continue
                result = packed(item, loaded)
                if isinstance(result, Skipped):
                    seen.append((portable(probed), result, stat))
                    continue
                f.write(result.example)
                size = len(result.example)
                r = result.record
                shape = (r.format, r.dtype, r.height, r.width, r.channels, r.orientation)
                record = kept(Stored(piece, offset, size, result.stored, result.note, shape))
                seen.append((portable(probed), record, stat))
                offset += size
    except OSError as e:
        raise cannot_write(folder, e, resumable=False) from None
    return seen


def _stat(item: Item) -> tuple[int, int] | None:
    """(size, mtime ns) of a local file, as ``scan.stat`` gives it; None: not known here."""
    if item.stat is not None or item.ref is not None or not isinstance(item.path, Path):
        return None
    try:
        st = os.stat(item.path)
    except OSError:
        return None  # the main process looks it up itself, with its own error handling
    return st.st_size, st.st_mtime_ns


def probe_one(task: tuple[Item, int]) -> Portable:
    """In a worker: ``payloads.probe`` of an item (with this --max-pixels), ``Portable``."""
    item, max_pixels = task
    try:
        return probe(item, max_pixels)
    except (NotAnImage, SkipImage) as e:
        return portable(e)


def shard_jobs(
    folder: Path, pieces: Pieces, specs: list[ShardSpec]
) -> list[tuple[Path, Path, ShardSpec, list[Result]]]:
    """What writing each shard from the pieces takes (``write_from_pieces``)."""
    return [
        (folder, pieces.folder, spec, [pieces.results[item.rel] for item in spec.items])
        for spec in specs
    ]


def write_from_pieces(job: tuple[Path, Path, ShardSpec, list[Result]]) -> ShardResult:
    """Write one shard (and its index) into ``folder`` from the pieces, in plan order."""
    folder, pieces, spec, results = job
    return write_shard(folder, spec, _records(pieces, spec.items, results))


def _records(
    pieces: Path, items: Sequence[Item], results: list[Result]
) -> Iterator[Packed | Skipped]:
    files: dict[int, int] = {}
    try:
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Skipped):
                yield result
                continue
            result = unkept(result)
            fd = files.get(result.piece)
            if fd is None:
                if len(files) >= OPEN_PIECES:
                    for old in files.values():
                        os.close(old)
                    files.clear()
                fd = files[result.piece] = os.open(pieces / f"{result.piece:06d}.rec", os.O_RDONLY)
            blob = os.pread(fd, result.size, result.offset)
            if len(blob) != result.size:
                raise OSError(errno.EIO, "a piece of the first pass was cut short", str(pieces))
            fmt, dtype, height, width, channels, orientation = result.shape
            # the fields the statistics count (write_shard keeps nothing else of it)
            record = Record(b"", fmt, height, width, channels, dtype, item.label, item.text,
                            item.rel, "", orientation)  # fmt: skip
            yield Packed(blob, record, result.stored, result.note)
    finally:
        for fd in files.values():
            os.close(fd)
