"""The local executor: shards written by processes on this machine (``--workers``).

Each worker loads, encodes and writes whole shards, one per worker at a time, so no image
crosses between processes (for raw pixels that crossing costs more than the second core
gains); the shards that do not fill a round of workers are cut into runs of records that
all the workers write into pieces, appended here in plan order (``runs``). Encoded records
come from the pieces of the first pass (``onepass``). With one worker, everything runs in
this process. Either way the bytes depend only on the plan.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ...core import spool
from ...core.progress import Progress
from ...core.storage import Folder, Location
from ...format.layout import PIECES
from ...format.options import PackOptions
from ...images.loading import ImageOptions, Loaded
from ..discover import Item
from ..encode import Packed, ShardResult, Skipped, load_or_skip, pack_one, write_shard
from ..journal import Journal
from ..lock import cannot_write
from ..payloads import unportable
from ..scan import Scan, classify, listing, scan_source
from ..sharding import ShardSpec
from . import runs
from .onepass import (
    Pieces,
    batch_count,
    batches,
    probe_task,
    probed_batches,
    read_batch,
    shard_jobs,
    write_from_pieces,
)
from .pool import IN_FLIGHT, in_order


@dataclass
class LocalExecutor:
    workers: int = 1
    # Where the scan's and the plan's per-image sequences are kept (files in OUT's working
    # folder, so that memory does not grow with the number of images), and, when ``scan``
    # read each file once (a local SRC), the first pass's records.
    _store: spool.Disk | None = field(default=None, init=False, repr=False, compare=False)
    _pieces: Pieces | None = field(default=None, init=False, repr=False, compare=False)

    def check(self) -> None:
        pass

    def scan_source(
        self, src: Location, out: Folder, opts: PackOptions, progress: Progress
    ) -> Scan:
        """What SRC holds. A local SRC packed into encoded (or PNG, JPEG) records: one pass
        that reads each file once (``onepass``), its records kept in OUT for ``write``.
        Raw pixels: a header look at each file, in the workers (writing pixels twice would
        cost more than reading a header twice). A SRC on an object store: header reads,
        many at a time. The listing, the scan and the plan are kept in files (``spool``)."""
        self.close()
        if not isinstance(out.where, Path):
            return scan_source(src, out.where, opts, progress)
        working = out.where / PIECES
        shutil.rmtree(working, ignore_errors=True)  # a killed run's
        try:
            working.mkdir()
            self._store = store = spool.Disk(working)
            if isinstance(src, str):  # on an object store
                return scan_source(src, out.where, opts, progress, store)
            return self._scan_local(src, working, opts, progress, store)
        except OSError as e:
            if e.filename is not None and not str(e.filename).startswith(str(working)):
                raise  # not the working folder's (a source that cannot be read is skipped)
            raise cannot_write(working, e, resumable=False) from None

    def _scan_local(
        self, src: Path, working: Path, opts: PackOptions, progress: Progress, store: spool.Disk
    ) -> Scan:
        found = listing(src, working.parent, opts, progress, store)
        # Pillow's common plugins, loaded once here rather than in each worker forked below
        Image.preinit()
        # The listing is read once: what the workers are sent is kept until its answers come.
        listed, again = itertools.tee(found.items)
        count = len(found.items)
        if opts.format == "raw":
            looks = ((item, opts.max_pixels) for item in listed)
            with contextlib.closing(in_order(probe_task, looks, self.workers, 64, count)) as done:
                answers = _numpy_meanwhile(map(unportable, done), self.workers)
                pairs = zip(again, answers, strict=True)
                return classify(src, opts, found, pairs, progress, store)
        pieces = self._pieces = Pieces(working, store.blobs())
        tasks = batches(listed, count, working, opts.image_options(), self.workers)
        size = batch_count(count, self.workers)
        with contextlib.closing(in_order(read_batch, tasks, self.workers, 1, size)) as read:
            looked = probed_batches(again, read, pieces)
            result = classify(src, opts, found, looked, progress, store)
        assert len(pieces.results) == len(result.candidates), "one place per candidate"
        return result

    def write(
        self,
        specs: list[ShardSpec],
        out: Folder,
        image_options: ImageOptions,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        assert isinstance(out.where, Path), "the local executor writes local folders"
        folder = out.where
        total = sum(len(spec.items) for spec in specs)
        if self._pieces is not None:  # whole shards from the first pass's pieces
            jobs = shard_jobs(folder, self._pieces, specs)
            workers = self.workers if len(specs) > 1 else 1
            written = 0
            done = in_order(write_from_pieces, jobs, workers, 1, len(specs))
            with contextlib.closing(done) as results:
                for spec, result in zip(specs, results, strict=True):
                    journal.record(result)
                    written += len(spec.items)
                    progress("pack", written, total)
                    yield result
            return
        if self.workers > 1:
            yield from self._write_spread(specs, folder, image_options, journal, progress)
            return
        tasks = ((item, image_options) for spec in specs for item in spec.items)
        with contextlib.closing(in_order(_pack_task, tasks, self.workers, 8, total)) as loaded:
            counted = _counted(loaded, lambda n: progress("pack", n, total))
            for spec in specs:
                result = write_shard(folder, spec, counted)
                journal.record(result)
                yield result

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._pieces = None

    def _write_spread(
        self,
        specs: list[ShardSpec],
        folder: Path,
        image_options: ImageOptions,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        """``write`` on several workers, all of them busy whatever the shard count: whole
        shards, one per worker, as long as they fill a round; the rest cut into runs of
        records (``runs``), which the workers write into pieces and this process appends."""
        pieces = folder / PIECES
        pieces.mkdir(exist_ok=True)
        cut = runs.split(specs, self.workers)
        slots = self.workers * IN_FLIGHT + 1  # every task in_order may have sent out, + 1
        todo = runs.tasks(specs, cut, folder, pieces, image_options, slots)
        names = runs.pieces_of(pieces, slots)
        buffer = bytearray()
        total = sum(len(spec.items) for spec in specs)
        finished: dict[str, ShardResult] = {}
        written = 0
        count = runs.count(specs, cut)
        with contextlib.closing(in_order(runs.run_task, todo, self.workers, 1, count)) as done:
            order = [s for s in specs if s.name in cut] + [s for s in specs if s.name not in cut]
            ready = iter(specs)
            upcoming = next(ready, None)
            for spec in order:
                if spec.name in cut:
                    result = runs.assemble(folder, spec, names, done, buffer)
                else:
                    result = next(done)
                journal.record(result)
                written += len(spec.items)
                progress("pack", written, total)
                finished[spec.name] = result
                while upcoming is not None and upcoming.name in finished:
                    yield finished.pop(upcoming.name)
                    upcoming = next(ready, None)


def _numpy_meanwhile(answers: Iterator[Any], workers: int) -> Iterator[Any]:
    """``answers``; once the first has come (the workers are started), NumPy is imported here
    while they go on, so that the workers forked to write raw pixels have it already instead
    of each importing it (about 80 ms)."""
    for n, answer in enumerate(answers):
        if n == 0 and workers > 1:
            import numpy  # noqa: F401

        yield answer


def _pack_task(task: tuple[Item, ImageOptions]) -> Packed | Skipped:
    return pack_one(*task)


def _counted(results: Iterator[Any], tick: Callable[[int], None]) -> Iterator[Any]:
    """``results``, calling ``tick(n)`` as the n-th is taken (for progress)."""
    for n, result in enumerate(results, 1):
        tick(n)
        yield result


def _load_task(task: tuple[Item, ImageOptions]) -> Loaded | Skipped:
    return load_or_skip(task[0], task[1])


def load_in_order(
    items: list[Item], opts: ImageOptions, workers: int
) -> Iterator[tuple[Item, Loaded | Skipped]]:
    """``(item, loaded or skipped)`` for each item, in order, loaded in worker processes."""
    tasks = [(item, opts) for item in items]
    with contextlib.closing(in_order(_load_task, tasks, workers)) as results:
        yield from zip(items, results, strict=True)
