"""One writer per OUT: an exclusive lock held for the whole of a pack.

Locally the lock is ``OUT/.imgrec.lock`` held with ``flock``: the kernel releases it when
the holder ends, however it ends (``kill -9`` included), so a crashed run never leaves a
stale lock behind; the file names the holder (pid, host, start) for the error another run
shows. On an object store there is no such lock: ``.imgrec.lock`` is an object naming the
holder, written when the pack starts and deleted when it ends. A run finding one refuses
to start unless it is stale: written on this machine by a process that no longer exists.
One written elsewhere can only be judged by a person: the error says how to remove it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.errors import OutputError
from ..core.storage import Folder
from ..format.layout import LOCK


def cannot_write(where: object, e: OSError, resumable: bool = True) -> OutputError:
    """An OSError while writing OUT as one line saying what to do."""
    what = e.strerror or str(e)
    again = " and run again with --resume" if resumable else " and run again"
    if e.errno == errno.ENOSPC:
        return OutputError(f"{where}: cannot write ({what}); free some space{again}")
    if e.errno == errno.EROFS:
        return OutputError(f"{where}: cannot write ({what}); choose a writable OUT")
    if e.errno in (errno.EACCES, errno.EPERM):
        return OutputError(
            f"{where}: cannot write ({what}); fix the folder's permissions or choose another OUT"
        )
    return OutputError(f"{where}: cannot write ({what}); fix the folder{again}")


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"


def _read_holder(data: bytes | None) -> dict[str, Any]:
    try:
        holder = json.loads(data or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def locked(out: Folder) -> Iterator[None]:
    """Hold OUT's lock for the block; OutputError naming the holder if another has it."""
    if isinstance(out.where, Path):
        with _local(out.where):
            yield
    else:
        with _remote(out):
            yield


@contextlib.contextmanager
def _local(folder: Path) -> Iterator[None]:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; choose another OUT")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the output folder ({e.strerror})") from None
    try:
        fd = _acquire(folder / LOCK)
    except (OSError, OutputError) as e:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, OutputError):
            raise
        raise cannot_write(folder, e, resumable=False) from None
    try:
        yield
    finally:
        try:
            with contextlib.suppress(OSError):
                (folder / LOCK).unlink()  # while still held: a waiting run then makes a new one
        finally:  # even when a Ctrl-C cuts the unlink short: an open lock would hold OUT
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # a run that wrote nothing leaves nothing


def _acquire(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(os.read(fd, 4096))
            os.close(fd)
            raise OutputError(
                f"{path.parent}: another imgrec pack is writing here ({_describe(holder)});"
                " wait for it to finish, or stop it"
            ) from None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(_holder()).encode())
            except OSError:  # a full disk: leave no lock file behind
                path.unlink()
                os.close(fd)
                raise
            return fd
        os.close(fd)  # the holder removed it as we opened it: take the new one


@contextlib.contextmanager
def _remote(out: Folder) -> Iterator[None]:
    holder = _read_holder(out.read_if_present(LOCK)) if out.size(LOCK) is not None else None
    if holder is not None and not _stale(holder):
        raise OutputError(
            f"{out}: another imgrec pack is writing here ({_describe(holder)}); wait for it to"
            f" finish, or, if that run is gone, delete {out.at(LOCK)}"
        )
    out.write(LOCK, json.dumps(_holder()).encode())
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            out.delete(LOCK)


def _stale(holder: dict[str, Any]) -> bool:
    """A lock object left by a process of this machine that no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
