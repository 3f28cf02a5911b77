"""Each source read once: how the local executor packs a local SRC into encoded (or PNG,
JPEG) records. (Raw pixels are many times the size of their source: writing them twice
costs more than reading a header twice, so a raw pack scans headers, in the workers, and
then loads; ``probe_task`` is that scan's task.)

Scanning and packing are one pass over the files, in the worker processes: each file is
read once, and both what its header says (an image or not, skipped and why, its size: what
the plan needs) and its stored record come from that one read. The records are written,
serialized, into piece files in ``OUT/.imgrec-pieces.d/`` (one per batch of files, in listing
order); only their places and statistics go back to the driver, which keeps them in a file
(``spool``), not in memory. Once the plan is made from those facts, the driver writes each
shard's order (its images' places, in plan order) into a file, and the workers write the
shards from the pieces, a whole shard each: its bytes are exactly those of writing it
straight from the images, for any number of workers.

Pixels never travel between processes. The price: the stored records are written twice
(into pieces, then into shards), and the pieces take as much room as the dataset until the
pack ends.
"""

from __future__ import annotations

import errno
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from ...core import spool
from ...format.schema import Record
from ...images.loading import ImageOptions, NotAnImage, SkipImage
from ..discover import Item
from ..encode import Packed, ShardResult, Skipped, packed, write_records
from ..lock import cannot_write
from ..payloads import Portable, Probed, portable, probe_item, read_once, unportable
from ..sharding import ShardSpec

BATCH = 64  # files per piece (at most)
OPEN_PIECES = 256  # piece files held open at once while a shard is written
_LENGTH = 4  # bytes of the length before each image's place in a shard's order file


@dataclass
class Pieces:
    """The first pass's records (files in ``folder``), and each candidate image's place in
    them (``kept``), in listing order: one per image the scan keeps, as the store keeps it
    (a file, for the local executor)."""

    folder: Path
    results: Sequence[bytes]


def kept(item: Item, result: Packed | Skipped, piece: int, offset: int) -> bytes:
    """What writing the item's record into a shard takes, once the record is in a piece at
    ``offset``: where it is, and the fields the statistics and the notes count. A few dozen
    bytes (pickled: written and read only by imgrec's own processes, in its working folder)."""
    if isinstance(result, Skipped):
        return pickle.dumps((item.rel, result.reason))
    r = result.record
    shape = (r.format, r.dtype, r.height, r.width, r.channels, r.orientation, r.profile)
    place = (piece, offset, len(result.example), result.stored, result.note)
    return pickle.dumps((item.rel, item.label, item.text, shape, *place, r.objects,
                         r.mask_classes))  # fmt: skip


Batch = tuple[Path, int, list[Item], ImageOptions]


def batches(
    items: Iterable[Item], count: int, pieces: Path, opts: ImageOptions, workers: int
) -> Iterator[Batch]:
    """The first pass's tasks, for ``read_batch``: the ``count`` items in listing order, in
    batches, made as they are taken."""
    size = _batch_size(count, workers)
    listed = iter(items)
    for n in range(batch_count(count, workers)):
        yield pieces, n, list(islice(listed, size)), opts


def batch_count(count: int, workers: int) -> int:
    """How many batches ``batches`` makes of ``count`` items."""
    return -(-count // _batch_size(count, workers))


def _batch_size(count: int, workers: int) -> int:
    return max(1, min(BATCH, count // (workers * 8)))


Seen = tuple[Portable, bytes | None, tuple[int, int] | None]  # and the file's (size, mtime)


def probed_batches(
    items: Iterable[Item], done: Iterator[list[Seen]], pieces: Pieces
) -> Iterator[tuple[Item, Probed]]:
    """From ``read_batch``'s results (``done``, in task order, for ``items``): each item
    (with the size and time of its file that the worker saw, so that the main process does
    not look each file up again) and what ``loading.probe_file`` would answer for it, in order.
    Each candidate's place is appended to ``pieces.results``."""
    seen_all = (answer for seen in done for answer in seen)
    for item, (answer, result, stat) in zip(items, seen_all, strict=True):
        if result is not None:
            spool.append(pieces.results, result)
        if stat is not None and item.stat is None:
            item = replace(item, stat=stat)
        yield item, unportable(answer)


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
                result = packed(item, loaded, opts)
                seen.append((portable(probed), kept(item, result, piece, offset), stat))
                if isinstance(result, Packed):
                    f.write(result.example)
                    offset += len(result.example)
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


def probe_task(task: tuple[Item, int]) -> Portable:
    """In a worker: ``payloads.probe_item`` of an item (with this --max-pixels), ``Portable``."""
    item, max_pixels = task
    try:
        return probe_item(item, max_pixels)
    except (NotAnImage, SkipImage) as e:
        return portable(e)


Job = tuple[Path, Path, str, str | None, Path]  # OUT, pieces, shard, split, its order file


def shard_jobs(folder: Path, pieces: Pieces, specs: list[ShardSpec]) -> Iterator[Job]:
    """What writing each shard from the pieces takes (``write_from_pieces``), made as they
    are taken: the shard's order file, its images' places in plan order, written here."""
    for spec in specs:
        order = pieces.folder / f"{spec.name}.order"
        try:
            with open(order, "wb") as f:
                for k in spec.positions:
                    place = pieces.results[k]
                    f.write(len(place).to_bytes(_LENGTH, "little"))
                    f.write(place)
        except OSError as e:
            raise cannot_write(pieces.folder, e, resumable=True) from None
        yield folder, pieces.folder, spec.name, spec.split, order


def write_from_pieces(job: Job) -> ShardResult:
    """Write one shard (and its index) into ``folder`` from the pieces, in plan order."""
    folder, pieces, name, split, order = job
    return write_records(folder, name, split, _records(pieces, order))


def _records(pieces: Path, order: Path) -> Iterator[tuple[str, Packed | Skipped]]:
    files: dict[int, int] = {}
    try:
        with open(order, "rb") as f:
            while head := f.read(_LENGTH):
                place: tuple[Any, ...] = pickle.loads(f.read(int.from_bytes(head, "little")))
                if len(place) == 2:
                    yield place[0], Skipped(place[1])
                    continue
                rel, label, text, shape, piece, offset, size, stored, note, *annotated = place
                objects, mask_classes = annotated
                fd = files.get(piece)
                if fd is None:
                    if len(files) >= OPEN_PIECES:
                        for old in files.values():
                            os.close(old)
                        files.clear()
                    fd = files[piece] = os.open(pieces / f"{piece:06d}.rec", os.O_RDONLY)
                blob = os.pread(fd, size, offset)
                if len(blob) != size:
                    raise OSError(errno.EIO, "a piece of the first pass was cut short", str(pieces))
                fmt, dtype, height, width, channels, orientation, profile = shape
                # the fields the statistics count (write_records keeps nothing else of it)
                record = Record(b"", fmt, height, width, channels, dtype, label, text, rel, "",
                                orientation, objects=objects,
                                mask_classes=mask_classes, profile=profile)  # fmt: skip
                yield rel, Packed(blob, record, stored, note)
    finally:
        for fd in files.values():
            os.close(fd)
