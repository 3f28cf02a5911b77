"""imgrec's own worker processes: ``in_order`` computes a function over tasks on several
processes and gives the results in task order.

Each worker has its own pipe to the main process, and the main process waits on the pipes
and on the workers' process handles together. So a worker's death, at any moment, is seen at
once: a worker killed while it sends its results leaves a half message, which ends (its
end of the pipe closes with it) instead of blocking the reader, as it can in
``concurrent.futures.ProcessPoolExecutor``, whose workers share one result queue.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from ...core.errors import ImgrecError


class WorkerDied(ImgrecError):
    """A worker process ended before its work was done."""


# Batches of tasks sent to each worker ahead of the one whose results are awaited
IN_FLIGHT = 3
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h: mallopt's parameters
STOP_SECONDS = 10  # how long finished workers get to exit before they are killed


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
    they are taken (then ``count`` says how many there are: it sizes the batches). A
    worker that dies raises ``WorkerDied``, naming it; the other workers are stopped.
    """
    if count is None:
        tasks = list(tasks)
        count = len(tasks)
    if workers == 1 or count < 2:
        yield from map(fn, tasks)
        return
    size = max(1, min(batch, count // (workers * 4)))
    listed = iter(tasks)
    pending = enumerate(iter(lambda: list(itertools.islice(listed, size)), []))
    # fork is fast and does not re-import the caller's script; but once TensorFlow (and its
    # thread pools) is loaded, a forked child can deadlock, so spawn is used then.
    context = multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")
    pool = _Pool(context, workers)
    finished = False
    try:
        yield from pool.run(fn, pending)
        finished = True
    finally:
        pool.stop(finished)


class _Pool:
    """The workers, each with its pipe and the batch numbers it has been sent."""

    def __init__(self, context: Any, workers: int) -> None:
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        try:
            for _ in range(workers):
                ours, theirs = context.Pipe()
                proc = context.Process(target=_serve, args=(theirs, os.getpid()), daemon=True)
                with _signals_held():  # a Ctrl-C comes once the worker is in the lists
                    proc.start()
                    self.procs.append(proc)
                    self.conns.append(ours)
                theirs.close()  # only the worker holds its end: its death closes the pipe
        except BaseException:
            # Workers ignore SIGTERM: multiprocessing's exit would wait for them forever.
            self.stop(False)
            raise
        self.sent: list[collections.deque[int]] = [collections.deque() for _ in self.conns]

    def run(
        self, fn: Callable[[Any], Any], pending: Iterator[tuple[int, list[Any]]]
    ) -> Iterator[Any]:
        done: dict[int, list[Any]] = {}
        wanted = 0
        for _ in range(IN_FLIGHT):  # in turn, as the results will be taken
            for n in range(len(self.conns)):
                self._send(n, fn, pending, 1)
        while any(self.sent) or wanted in done:
            if wanted in done:
                # One batch out for each taken: never more than IN_FLIGHT per worker are
                # out and not yet taken (runs.py reuses piece files by that bound).
                self._send(min(range(len(self.sent)), key=lambda k: len(self.sent[k])), fn,
                           pending, 1)  # fmt: skip
                yield from done.pop(wanted)
                wanted += 1
                continue
            for n in self._ready():
                index, results = self._receive(n)
                if isinstance(results, BaseException):
                    raise results
                done[index] = results

    def _send(self, n: int, fn: Callable[[Any], Any], pending: Iterator[Any], k: int) -> None:
        for index, chunk in itertools.islice(pending, k):
            try:
                self.conns[n].send((index, fn, chunk))
            except OSError:  # its pipe is closed: the worker is gone
                raise self._died(n) from None
            self.sent[n].append(index)

    def _ready(self) -> list[int]:
        """Workers with a message (or an end) to read; a worker that died with nothing left
        to read raises WorkerDied."""
        handles = {conn: n for n, conn in enumerate(self.conns) if self.sent[n]}
        sentinels = {self.procs[n].sentinel: n for n in handles.values()}
        ready = wait([*handles, *sentinels])
        readable = [handles[r] for r in ready if r in handles]
        if readable:
            return readable
        raise self._died(sentinels[ready[0]])

    def _receive(self, n: int) -> tuple[int, Any]:
        try:
            index, results = self.conns[n].recv()
        except (EOFError, OSError):  # it died, perhaps halfway through a message
            raise self._died(n) from None
        self.sent[n].remove(index)
        return index, results

    def _died(self, n: int) -> WorkerDied:
        proc = self.procs[n]
        proc.join(1)
        code = proc.exitcode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exit code {code}" if code is not None else "its pipe closed"
        return WorkerDied(
            f"a worker process (pid {proc.pid}) died ({how}): out of memory, or killed"
        )

    def stop(self, finished: bool) -> None:
        """Finished: let the workers exit (killed if they do not in time). Stopped early
        (Ctrl-C, an error, a dead worker): kill them now. Killed in any case, even if a
        Ctrl-C cuts the wait short: they ignore SIGTERM, so multiprocessing's own clean-up
        at exit (SIGTERM, then a wait without end) cannot stop them."""
        try:
            if finished:
                for conn in self.conns:
                    with contextlib.suppress(OSError):
                        conn.send(None)
                for proc in self.procs:
                    proc.join(STOP_SECONDS)
        finally:
            for proc in self.procs:
                if proc.exitcode is None:
                    with contextlib.suppress(ProcessLookupError, TypeError):
                        os.kill(proc.pid, signal.SIGKILL)
            for proc in self.procs:
                proc.join(5)
            for conn in self.conns:
                conn.close()


def _serve(conn: Connection, parent: int) -> None:
    """A worker's life: batches in, their results out, until told to stop. A thread takes
    the batches in as they come, so the main process never waits to send one (it would wait
    forever if this worker were waiting to send it results at the same moment)."""
    _start_worker(parent)
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_take_in, args=(conn, inbox), daemon=True).start()
    while (message := inbox.get()) is not None:
        index, fn, chunk = message
        try:
            results: Any = [fn(task) for task in chunk]
        except BaseException as e:  # to the main process, which raises it
            results = e
        conn.send((index, results))


def _take_in(conn: Connection, inbox: queue.SimpleQueue[Any]) -> None:
    """In a worker: every message from the main process into ``inbox``; ``None`` at the end."""
    try:
        while (message := conn.recv()) is not None:
            inbox.put(message)
    except (EOFError, OSError):  # the main process is gone
        pass
    inbox.put(None)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back (in this thread) while a worker is started: the worker
    starts with them held, until it ignores them (``_start_worker``). Else a Ctrl-C from a
    terminal, sent to the whole process group, could reach a worker still running the
    caller's handlers: a traceback from it, and a 'worker died' error instead of the stop.
    A signal held here is taken as soon as the worker is started."""
    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _start_worker(parent: int) -> None:
    """Workers are imgrec's own processes: the main process owns the stop. Ctrl-C from a
    terminal and a scheduler's SIGTERM reach the whole process group, workers included:
    they ignore both, and the main process, stopping, ends them (with SIGKILL). Pillow's
    warnings about odd files would only be noise on the terminal (what matters is in the
    manifest). And a worker dies with the main process (kill -9 included): none may go on
    renaming shards into OUT after it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # held since fork
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
