"""The local executor: shards written by processes on this machine (``--workers``).

Each worker loads, encodes and writes whole shards, one per worker at a time, so no image
crosses between processes (for raw pixels that crossing costs more than the second core
gains); the shards that do not fill a round of workers are cut into runs of records that
all the workers write into pieces, appended here in plan order (``runs``). Encoded records
come from the pieces of the first pass (``onepass``). With one worker, everything runs in
this process. Either way the bytes depend only on the plan.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ...core import spool
from ...core.errors import ImgrecError
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


class WorkerDied(ImgrecError):
    """A worker process ended before its work was done."""


# Batches of tasks sent to the workers ahead of the one whose results are awaited, per worker
IN_FLIGHT = 3
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h: mallopt's parameters


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


def in_order(
    fn: Callable[[Any], Any],
    tasks: Iterable[Any],
    workers: int,
    batch: int = 8,
    count: int | None = None,
) -> Generator[Any]:
    """``fn(task)`` for each task, in order, computed by ``workers`` processes.

    Tasks travel in ``batch``es (fewer, larger messages between processes), and at most a few
    batches per worker are in flight: memory stays flat however many images there are, and
    a slow disk holds the workers back instead of filling memory. ``tasks`` may be made as
    they are taken (then ``count`` says how many there are: it sizes the batches).
    """
    if count is None:
        tasks = list(tasks)
        count = len(tasks)
    if workers == 1 or count < 2:
        yield from map(fn, tasks)
        return
    size = max(1, min(batch, count // (workers * 4)))
    listed = iter(tasks)

    def batches() -> Iterator[tuple[Callable[[Any], Any], list[Any]]]:
        while chunk := list(itertools.islice(listed, size)):
            yield fn, chunk

    # fork is fast and does not re-import the caller's script; but once TensorFlow (and its
    # thread pools) is loaded, a forked child can deadlock, so spawn is used then.
    method = "spawn" if "tensorflow" in sys.modules else "fork"
    before = _children()
    pool = ProcessPoolExecutor(
        workers, multiprocessing.get_context(method), _start_worker, (os.getpid(),)
    )
    finished = False
    try:
        pending = batches()
        window = collections.deque(
            pool.submit(_run_batch, b) for b in itertools.islice(pending, workers * IN_FLIGHT)
        )
        while window:
            results = window.popleft().result()
            for b in itertools.islice(pending, 1):
                window.append(pool.submit(_run_batch, b))
            yield from results
        finished = True
    except BrokenProcessPool:  # from result() or submit(): a worker died with its batch
        raise WorkerDied(
            "a worker process died (killed, or out of memory); finished shards are kept:"
            " run again with --resume"
        ) from None
    finally:
        if not finished:  # stopped early (Ctrl-C, an error, a dead worker): stop them now
            for pid in _children() - before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        pool.shutdown(wait=finished, cancel_futures=True)


def _children() -> set[int]:
    """Pids of this process's live child processes (the dead ones are reaped on the way)."""
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


def _run_batch(batch: tuple[Callable[[Any], Any], list[Any]]) -> list[Any]:
    fn, tasks = batch
    return [fn(task) for task in tasks]


def _start_worker(parent: int) -> None:
    """Workers are imgrec's own processes: the main process handles Ctrl-C and stops them;
    a forked worker inherits the CLI's SIGTERM handler, but the pool stops workers with
    SIGTERM, which must simply end them; Pillow's warnings about odd files would only be
    noise on the terminal (what matters is in the manifest). And a worker dies with the
    main process (kill -9 included): none may go on renaming shards into OUT after it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    warnings.simplefilter("ignore")
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _steady_heap(libc)
    if os.getppid() != parent:  # the main process died before prctl took effect
        os._exit(1)


def _steady_heap(libc: ctypes.CDLL) -> None:
    """In a worker: glibc's malloc serves the image-sized buffers (a few hundred KB to a few
    MB each, allocated and freed for every image) from the heap and keeps the freed memory,
    instead of mapping fresh pages for each (its default adapts its thresholds to what it
    sees, and depending on incidental allocations often maps and unmaps every buffer: up to
    ten times the page faults, 20 to 30 % of a raw pack's CPU). A worker's own setting."""
    mallopt = getattr(libc, "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, 32 << 20)
        mallopt(M_TRIM_THRESHOLD, 64 << 20)


def _load_task(task: tuple[Item, ImageOptions]) -> Loaded | Skipped:
    return load_or_skip(task[0], task[1])


def load_in_order(
    items: list[Item], opts: ImageOptions, workers: int
) -> Iterator[tuple[Item, Loaded | Skipped]]:
    """``(item, loaded or skipped)`` for each item, in order, loaded in worker processes."""
    tasks = [(item, opts) for item in items]
    with contextlib.closing(in_order(_load_task, tasks, workers)) as results:
        yield from zip(items, results, strict=True)
