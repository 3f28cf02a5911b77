"""A shard written by several workers: how the local executor spreads raw packs over its
workers whatever the shard count.

Whole shards are the cheapest unit of work (a worker loads, encodes, frames, hashes and
writes a shard, and nothing crosses between processes), but with fewer shards than workers,
or a last round of shards that does not fill every worker, cores sit idle. So the shards
that do not make a full round are cut into runs of consecutive records in plan order
(``RUN`` images each): a worker loads and encodes a run and writes its framed records into
one piece file in ``OUT/.imgrec-pieces.d/``, and only each record's size and statistics go
back. The main process appends the pieces to the shard in plan order, hashing as it goes,
and shifts the records' offsets into the shard's index. The bytes are those of writing the
shard straight from the images. Pixels never travel through a pipe; the price is one more
copy of the split shards' bytes (read back from the page cache and written again), paid by
the main process while the workers go on.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...format.framing import ShardWriter, frame
from ...format.manifest import Note, ShardEntry
from ...format.schema import Objects, Record
from ...format.stats import Stats
from ...images.loading import ImageOptions
from ..discover import Item
from ..encode import ShardResult, Skipped, pack_one, write_shard
from ..sharding import ShardSpec

RUN = 16  # images per run: about 6 MB of raw 400 x 300 photos
CHUNK = 8 << 20  # bytes of a piece read at a time while a shard is assembled


@dataclass(frozen=True, slots=True)
class Framed:
    """One record of a run: its framed size, and what the statistics need of it."""

    size: int
    stored: int  # bytes of the image payload
    note: str | None
    shape: tuple[str, str, int, int, int, int, str]  # format, dtype, h, w, c, orient., profile
    objects: Objects | None = None  # packed with annotations: the record's, for the counts
    mask_classes: tuple[int, ...] = ()


Run = tuple[Path, str, tuple[Item, ...], ImageOptions]  # pieces folder, piece name, images, options
Whole = tuple[Path, ShardSpec, ImageOptions]  # OUT, the shard, options
Task = tuple[str, Run | Whole]


def split(specs: list[ShardSpec], workers: int) -> set[str]:
    """The shards (by name) to cut into runs: those that do not make a full round of whole
    shards, one per worker (all of them with fewer shards than workers)."""
    return {spec.name for spec in specs[: len(specs) % workers]}


def tasks(
    specs: list[ShardSpec], cut: set[str], out: Path, pieces: Path, opts: ImageOptions, slots: int
) -> Iterator[Task]:
    """The work for ``run_task``, made as it is taken: the cut shards' runs first (the main
    process assembles them while the workers go on with whole shards), then the whole
    shards. Each task carries its images (a whole shard's: a plan kept on disk is read).

    Runs go into ``slots`` piece files in turn, overwritten rather than made anew: writing
    into pages the page cache holds already costs a copy, fresh pages cost several times
    that. So at most ``slots - 1`` tasks may be under way or done but not yet assembled
    (``in_order``'s window), and a piece file holds the bytes of its last run only."""
    n = 0
    for spec in specs:
        if spec.name in cut:
            for start in range(0, len(spec.items), RUN):
                items = tuple(spec.items[start : start + RUN])
                yield "run", (pieces, _piece(n, slots), items, opts)
                n += 1
    for spec in specs:
        if spec.name not in cut:
            yield "whole", (out, ShardSpec(spec.name, spec.split, tuple(spec.items)), opts)


def count(specs: list[ShardSpec], cut: set[str]) -> int:
    """How many tasks ``tasks`` makes."""
    return sum(-(-len(spec.items) // RUN) if spec.name in cut else 1 for spec in specs)


def _piece(n: int, slots: int) -> str:
    return f"{n % slots:04d}.run"


def run_task(task: Task) -> list[Framed | Skipped] | ShardResult:
    """In a worker: a run written into its piece file, or a whole shard written."""
    kind, job = task
    if kind == "whole":
        out, spec, opts = job  # type: ignore[misc]
        return write_shard(out, spec, (pack_one(item, opts) for item in spec.items))
    pieces, name, items, opts = job  # type: ignore[misc]
    seen: list[Framed | Skipped] = []
    # not truncated: its pages are reused (see ``tasks``); only the run's bytes are read
    with os.fdopen(os.open(pieces / name, os.O_WRONLY | os.O_CREAT, 0o644), "wb") as f:
        for item in items:
            result = pack_one(item, opts)
            if isinstance(result, Skipped):
                seen.append(result)
                continue
            framed = frame(result.example)
            f.write(framed)
            r = result.record
            shape = (r.format, r.dtype, r.height, r.width, r.channels, r.orientation, r.profile)
            seen.append(Framed(len(framed), result.stored, result.note, shape, r.objects,
                               r.mask_classes))  # fmt: skip
    return seen


def pieces_of(pieces: Path, slots: int) -> Iterator[Path]:
    """The piece file of each run ``tasks`` makes, in order (for ``assemble``)."""
    for n in itertools.count():
        yield pieces / _piece(n, slots)


def assemble(
    out: Path,
    spec: ShardSpec,
    pieces: Iterator[Path],
    done: Iterator[list[Framed | Skipped]],
    buffer: bytearray,
) -> ShardResult:
    """Write the shard ``spec`` and its index into ``out`` from its runs' piece files
    (``pieces``, in order); ``done``: what ``run_task`` returned for each run, in order;
    ``buffer``: reused for the bytes read. The same result, byte for byte, as
    ``encode.write_shard`` from the images."""
    skipped: list[Note] = []
    transcoded: list[Note] = []
    stats = Stats()
    with ShardWriter(out / spec.name) as writer:
        for start in range(0, len(spec.items), RUN):
            items = spec.items[start : start + RUN]
            seen = next(done)
            sizes = []
            for item, result in zip(items, seen, strict=True):
                if isinstance(result, Skipped):
                    skipped.append(Note(item.rel, result.reason))
                    continue
                sizes.append(result.size)
                fmt, dtype, height, width, channels, orientation, profile = result.shape
                record = Record(b"", fmt, height, width, channels, dtype, item.label, item.text,
                                item.rel, "", orientation, objects=result.objects,
                                mask_classes=result.mask_classes, profile=profile)  # fmt: skip
                stats.add(record, result.stored)
                if result.note:
                    transcoded.append(Note(item.rel, result.note))
            piece = next(pieces)
            for n, blob in enumerate(_chunks(piece, sum(sizes), buffer)):
                writer.write_framed(blob, sizes if n == 0 else [])  # sizes: the index lines
    info = writer.info
    entry = ShardEntry(spec.name, info.records, info.bytes, info.sha256, spec.index, spec.split)
    return ShardResult(entry, skipped, transcoded, stats)


def _chunks(path: Path, size: int, buffer: bytearray) -> Iterator[memoryview]:
    """The file's first ``size`` bytes, ``CHUNK`` at a time, each read into ``buffer``
    (reused: no fresh pages for each piece, and memory bounded whatever the images' size)."""
    if len(buffer) < min(size, CHUNK):
        buffer.extend(bytes(min(size, CHUNK) - len(buffer)))
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < size:
            with memoryview(buffer)[: min(CHUNK, size - done)] as view:
                got = 0
                while got < len(view):
                    read = os.readv(fd, [view[got:]])
                    if read == 0:
                        raise OSError(errno.EIO, "a piece of the pack was cut short", str(path))
                    got += read
                yield view
            done += got
    finally:
        os.close(fd)
