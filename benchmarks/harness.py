"""Measuring one benchmark subprocess, and the rows (cases) of the benchmark table.

Shared by run.py (pack and CLI rows, the table, the targets) and read_rows.py (the read
rows). See run.py's docstring for what is measured and how.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 1e6
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

# Other processes using more than this many cores during a run make it a noisy one.
BUSY = 0.25
# A read pass that used under STALL_USED cores while the machine left more than STALL_IDLE
# cores idle is a stalled one: on this VM a TensorFlow process sometimes gets only one of
# the two cores for seconds at a time (the pass takes twice as long, with the other core
# idle and no other process running), for every pipeline alike. Such a sample is measured
# again like a busy one.
STALL_USED = 1.3
STALL_IDLE = 0.6

# --------------------------------------------------------------------------------------------
# Measuring one subprocess


class TreeMonitor(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak = 0  # bytes
        self.most_processes = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            pids = descendants(self.root)
            rss = sum(rss_bytes(p) for p in pids)
            self.peak = max(self.peak, rss)
            self.most_processes = max(self.most_processes, len(pids))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent ids in /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0  # gone, or a zombie


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def wait_for_quiet(limit_s: float, threshold: float = 0.25, window: float = 0.5) -> float:
    """Wait (up to ``limit_s``) for a moment when other processes use under ``threshold``
    cores; returns the cores they used in the last window looked at."""
    deadline = time.monotonic() + limit_s
    while True:
        before = busy_seconds()
        time.sleep(window)
        cores = (busy_seconds() - before) / window
        if cores < threshold or time.monotonic() >= deadline:
            return cores


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    tree_rss_mb: float  # sampled peak of the summed RSS of the process tree
    maxrss_mb: float  # exact peak of the largest single process (wait4 ru_maxrss)
    processes: int
    load1: float  # 1-minute load average just before the run
    background_cores: float  # CPU used by other processes during the run, in cores
    stdout: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.tree_rss_mb, self.maxrss_mb)

    @property
    def stalled_cores(self) -> float:
        """For a read, the cores left idle during its (first) pass if the pass stalled
        (see STALL_USED), else 0."""
        passes = self.extra.get("epochs") or [{}]
        used, idle = passes[0].get("cores_used"), passes[0].get("cores_idle")
        if used is None or idle is None or used >= STALL_USED or idle <= STALL_IDLE:
            return 0.0
        return float(idle)

    @property
    def disturbance(self) -> float:
        """Cores taken from this run by other processes, or idle while it stalled."""
        return max(self.background_cores, self.stalled_cores)


def measure(cmd: list[str], env: dict[str, str]) -> Sample:
    """Run ``cmd`` to completion and measure it. Raises RuntimeError if it fails."""
    load1 = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy = busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        monitor = TreeMonitor(proc.pid)
        monitor.start()
        # wait4 gives this child's resource use, including the children it reaped itself
        # (imgrec's worker processes): ru_maxrss is then the largest single process's peak.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        busy = busy_seconds() - busy
        monitor.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(
        wall_s=wall,
        cpu_s=cpu,
        tree_rss_mb=monitor.peak / MB,
        maxrss_mb=usage.ru_maxrss * 1024 / MB,  # KiB on Linux
        processes=monitor.most_processes,
        load1=load1,
        background_cores=max(0.0, busy - cpu) / wall,
        stdout=stdout,
    )


def take_sample(case: Case, env: dict[str, str], settle: float) -> Sample:
    if case.prepare:
        case.prepare()
    # Flush what earlier runs wrote or deleted (a deleted shard may mean discards on an SSD),
    # so that this run's fsync does not wait for another run's blocks.
    os.sync()
    if settle > 0:
        wait_for_quiet(settle)
    sample = measure(case.cmd, env)
    if case.check:
        case.check(sample)
    return sample


# --------------------------------------------------------------------------------------------
# The cases


@dataclass
class Case:
    key: str
    name: str
    group: str  # pack | read | cli
    cmd: list[str]
    repeats: int
    images: int = 0  # images processed, for images/s
    mbytes: float = 0.0  # MB processed, for MB/s (source MB for pack, stored MB for reads)
    prepare: Callable[[], None] | None = None  # run before each sample, not timed
    check: Callable[[Sample], None] | None = None  # validates a sample, fills sample.extra
    samples: list[Sample] = field(default_factory=list)
    discarded: int = 0  # samples measured again because the machine was busy
    stalled: int = 0  # of which, reads that stalled on one core
    epoch: int = 0  # reads: which pass of the process this row reports (0: the first)
    view_of: str | None = None  # another pass of this case's process: not run on its own

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in self.samples))

    @property
    def timed_s(self) -> float:
        """What throughput is computed from: the pipeline's own time for reads, else wall."""
        if self.group == "read":
            return float(
                statistics.median(s.extra["epochs"][self.epoch]["timed_s"] for s in self.samples)
            )
        return self.median("wall_s")

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.timed_s if self.images else None

    @property
    def mb_per_s(self) -> float | None:
        return self.mbytes / self.timed_s if self.mbytes else None


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file())


def count_images(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return len(files), sum(p.stat().st_size for p in files)


def fresh(folder: Path) -> Callable[[], None]:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    return prepare


def expect_pack(n: int) -> Callable[[Sample], None]:
    def check(sample: Sample) -> None:
        manifest = json.loads(sample.stdout)
        if manifest["records"] != n or manifest["skipped"]:
            raise RuntimeError(f"pack wrote {manifest['records']} records, expected {n}")
        sample.extra["imgrec_seconds"] = manifest["seconds"]

    return check


def expect_count(n: int) -> Callable[[Sample], None]:
    def check(sample: Sample) -> None:
        if int(sample.stdout.split()[-1]) != n:
            raise RuntimeError(f"baseline wrote {sample.stdout.strip()} records, expected {n}")

    return check


def expect_read(n: int, size: int) -> Callable[[Sample], None]:
    def check(sample: Sample) -> None:
        result = json.loads(sample.stdout.strip().splitlines()[-1])
        for one in result["epochs"]:  # every pass (one, or several with --epochs)
            if one["images"] != n or one["dtype"] != "float32":
                raise RuntimeError(f"read {one['images']} {one['dtype']} images, expected {n}")
            if one["batch_shape"][1:] != [size, size, 3]:
                raise RuntimeError(f"unexpected batch shape {one['batch_shape']}")
        sample.extra.update(result)

    return check


def imgrec_command() -> list[str]:
    """The console script pip installed for this interpreter (what `imgrec` runs)."""
    script = Path(sys.executable).parent / "imgrec"
    if script.is_file():
        return [str(script)]
    found = shutil.which("imgrec")
    return [found] if found else [sys.executable, "-m", "imgrec"]


def ratio(a: Case, b: Case) -> float:
    """Throughput of ``a`` over ``b`` (both from the same run)."""
    assert a.images_per_s and b.images_per_s
    return a.images_per_s / b.images_per_s


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
