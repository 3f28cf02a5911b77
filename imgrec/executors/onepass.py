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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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


Result = Stored | Skipped


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


def probes(
    tasks: list[Batch], done: Iterator[list[tuple[Portable, Result | None]]], pieces: Pieces
) -> Iterator[Probed]:
    """From ``read_batch``'s results (``done``, in task order): what ``images.probe`` would
    answer for each item, in order; each image's result is kept in ``pieces``."""
    for (_, _, batch, _), seen in zip(tasks, done, strict=True):
        for item, (answer, result) in zip(batch, seen, strict=True):
            if result is not None:
                pieces.results[item.rel] = result
            yield unportable(answer)


def read_batch(task: Batch) -> list[tuple[Portable, Result | None]]:
    """In a worker: one batch of files, each read once, its record written into the piece."""
    folder, piece, items, opts = task
    seen: list[tuple[Portable, Result | None]] = []
    try:  # only the piece can raise OSError here: a source that cannot be read is skipped
        with open(folder / f"{piece:06d}.rec", "wb") as f:
            offset = 0
            for item in items:
                probed, loaded = read_once(item, opts)
                if loaded is None:
                    seen.append((portable(probed), None))
                    continue
                result = packed(item, loaded)
                if isinstance(result, Skipped):
                    seen.append((portable(probed), result))
                    continue
                f.write(result.example)
                size = len(result.example)
                r = result.record
                shape = (r.format, r.dtype, r.height, r.width, r.channels, r.orientation)
                record = Stored(piece, offset, size, result.stored, result.note, shape)
                seen.append((portable(probed), record))
                offset += size
    except OSError as e:
        raise cannot_write(folder, e, resumable=False) from None
    return seen


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
