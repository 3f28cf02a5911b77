"""Running imgrec as a process and watching its OUT, for the tests of locks, interruptions,
resumes and faults: every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

JOURNAL_PLAN = ".imgrec-journal.d/plan.json"


def cli(*args: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m imgrec ARGS`` in a subprocess started in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "imgrec", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: object, cwd: Path) -> subprocess.Popen[str]:
    """``python -m imgrec ARGS`` started in the background (stop it with ``stop``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "imgrec", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a process this test started, if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def wait_until(
    done: Callable[[], bool], what: str, seconds: float, proc: subprocess.Popen[str] | None = None
) -> None:
    """Poll until ``done()``; fail after ``seconds``, or at once if ``proc`` ended first."""
    deadline = time.monotonic() + seconds
    while not done():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n{out}{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.02)


def shards_in(folder: Path) -> list[str]:
    """Finished shard files in a folder (not index files, not temporary files)."""
    if not folder.is_dir():
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".tfrecord"))


def packing(folder: Path) -> bool:
    """A pack into ``folder`` has written something: a shard, or (a local pack reads and
    encodes every image before its plan, into pieces) the first piece (the working folder
    holds the scan's files from the start)."""
    pieces = folder / ".imgrec-pieces.d"
    return bool(shards_in(folder)) or (pieces.is_dir() and any(pieces.glob("*.rec")))


def one_error_line(stderr: str) -> str:
    """The single line of stderr, checked to be an ``Error:`` line without a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]
