"""imgrec benchmark suite: pack, read back, and start-up, side by side with plain TensorFlow.

    python benchmarks/run.py [--images DIR | --source PHOTOS] [--count 1000] [--out RESULTS_DIR]

Every measurement is a separate subprocess: wall time is the whole process, CPU time is
user + system of the process and every child it reaped, and peak RSS is the largest sum of
resident memory over the process tree (sampled from /proc every 50 ms) or the largest single
process's exact peak (wait4's ru_maxrss), whichever is larger. Measurements are repeated in
round-robin order (so a noisy moment on a shared machine hits all of them alike) and the
median is reported. See benchmarks/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MB = 1e6
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

# Targets the project has set itself (see benchmarks/README.md).
HELP_MAX_S = 0.3
RAW_SCALING_MIN = 1.7
READ_VS_TFDATA_MIN = 1.0
READ_VS_KERAS_MIN = 1.3

# Other processes using more than this many cores during a run make it a noisy one.
BUSY = 0.25


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

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    @property
    def timed_s(self) -> float:
        """What throughput is computed from: the pipeline's own time for reads, else wall."""
        if self.group == "read":
            return statistics.median(s.extra["timed_s"] for s in self.samples)
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
        if result["images"] != n or result["dtype"] != "float32":
            raise RuntimeError(f"read {result['images']} {result['dtype']} images, expected {n}")
        if result["batch_shape"][1:] != [size, size, 3]:
            raise RuntimeError(f"unexpected batch shape {result['batch_shape']}")
        sample.extra.update(result)

    return check


def imgrec_command() -> list[str]:
    """The console script pip installed for this interpreter (what `imgrec` runs)."""
    script = Path(sys.executable).parent / "imgrec"
    if script.is_file():
        return [str(script)]
    found = shutil.which("imgrec")
    return [found] if found else [sys.executable, "-m", "imgrec"]


def build_cases(
    src: Path,
    n: int,
    src_mb: float,
    work: Path,
    workers: int,
    repeats: int,
    size: int,
    raw_shards: int,
) -> list[Case]:
    imgrec = imgrec_command()
    py = sys.executable
    enc, raw = work / "ref-encoded", work / "ref-raw"
    enc_mb, raw_mb = folder_bytes(enc, "*.tfrecord") / MB, folder_bytes(raw, "*.tfrecord") / MB
    reads = str(HERE / "read_pipelines.py")
    size_args = ["--size", str(size), str(size)]
    cases = [
        Case(
            "pack_tf_writer",
            "TF writer loop (baseline)",
            "pack",
            [py, str(HERE / "baseline_tf_writer.py"), str(src), str(work / "tfw")],
            repeats,
            n,
            src_mb,
            fresh(work / "tfw"),
            expect_count(n),
        )
    ]
    packs = [("encoded", None), ("raw", None)] + ([("raw", raw_shards)] if raw_shards else [])
    for fmt, shards in packs:
        for w in (1, workers):
            key = f"pack_{fmt}_w{w}" + (f"_s{shards}" if shards else "")
            out = work / key
            cmd = [*imgrec, "pack", str(src), str(out), "--format", fmt]
            cmd += ["--shards", str(shards)] if shards else []
            cases.append(
                Case(
                    key,
                    " ".join(["imgrec pack", *cmd[cmd.index("--format") :], "--workers", str(w)]),
                    "pack",
                    [*cmd, "--workers", str(w), "--json", "-q"],
                    repeats,
                    n,
                    src_mb,
                    fresh(out),
                    expect_pack(n),
                )
            )
    for key, name, target, mb in (
        ("read_tfdata", "hand-written tf.data (baseline)", ["tfdata", str(enc)], enc_mb),
        ("read_keras", "image_dataset_from_directory (baseline)", ["keras", str(src)], src_mb),
        ("read_imgrec_encoded", "imgrec.dataset, encoded shards", ["imgrec", str(enc)], enc_mb),
        ("read_imgrec_raw", "imgrec.dataset, raw shards", ["imgrec", str(raw)], raw_mb),
    ):
        cmd = [py, reads, *target, "--batch", "32", *size_args]
        cases.append(Case(key, name, "read", cmd, repeats, n, mb, check=expect_read(n, size)))
    cli_repeats = max(5, repeats)
    inspect = [*imgrec, "inspect", str(enc)]
    cases.append(Case("cli_help", "imgrec --help", "cli", [*imgrec, "--help"], cli_repeats))
    cases.append(Case("cli_inspect", "imgrec inspect OUT", "cli", inspect, cli_repeats))
    return cases


# --------------------------------------------------------------------------------------------
# Ratios, targets and the table


def ratio(a: Case, b: Case) -> float:
    """Throughput of ``a`` over ``b`` (both from the same run)."""
    assert a.images_per_s and b.images_per_s
    return a.images_per_s / b.images_per_s


def comparisons(cases: dict[str, Case], workers: int) -> dict[str, list[tuple[str, float]]]:
    """For each case, its throughput ratio to the relevant baselines."""
    out: dict[str, list[tuple[str, float]]] = {}
    tfw = cases["pack_tf_writer"]
    for fmt in ("encoded", "raw"):
        one = cases[f"pack_{fmt}_w1"]
        out[one.key] = [("TF writer", ratio(one, tfw))]
        many = cases[f"pack_{fmt}_w{workers}"]
        out[many.key] = [("TF writer", ratio(many, tfw)), ("1 worker", ratio(many, one))]
    sharded = sorted(k for k in cases if k.startswith("pack_raw_w") and "_s" in k)
    if sharded:
        one, many = cases[sharded[0]], cases[sharded[-1]]
        out[one.key] = [("TF writer", ratio(one, tfw))]
        out[many.key] = [("TF writer", ratio(many, tfw)), ("1 worker", ratio(many, one))]
    for key in ("read_imgrec_encoded", "read_imgrec_raw"):
        c = cases[key]
        out[key] = [
            ("tf.data", ratio(c, cases["read_tfdata"])),
            ("keras", ratio(c, cases["read_keras"])),
        ]
    out["read_tfdata"] = [("keras", ratio(cases["read_tfdata"], cases["read_keras"]))]
    return out


def targets(cases: dict[str, Case], workers: int) -> list[dict[str, Any]]:
    found = []

    def add(name: str, value: float, limit: float, holds: bool, unit: str) -> None:
        found.append(
            {"target": name, "value": round(value, 3), "limit": limit, "unit": unit, "holds": holds}
        )

    wall = cases["cli_help"].median("wall_s")
    add(f"imgrec --help under {HELP_MAX_S} s", wall, HELP_MAX_S, wall < HELP_MAX_S, "s")
    tfw = cases["pack_tf_writer"]
    for w in sorted({1, workers}):
        c = cases[f"pack_encoded_w{w}"]
        r = ratio(c, tfw)
        add(f"{c.name} faster than the TF writer loop", r, 1.0, r > 1.0, "x")
    raw1, rawn = cases["pack_raw_w1"], cases[f"pack_raw_w{workers}"]
    r = ratio(rawn, raw1)
    add(
        f"pack --format raw: {workers} workers >= {RAW_SCALING_MIN}x 1 worker",
        r,
        RAW_SCALING_MIN,
        r >= RAW_SCALING_MIN,
        "x",
    )
    for key in ("read_imgrec_encoded", "read_imgrec_raw"):
        c = cases[key]
        r = ratio(c, cases["read_tfdata"])
        add(
            f"{c.name} >= hand-written tf.data", r, READ_VS_TFDATA_MIN, r >= READ_VS_TFDATA_MIN, "x"
        )
        r = ratio(c, cases["read_keras"])
        add(
            f"{c.name} >= {READ_VS_KERAS_MIN}x image_dataset_from_directory",
            r,
            READ_VS_KERAS_MIN,
            r >= READ_VS_KERAS_MIN,
            "x",
        )
    return found


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(cases: list[Case], ratios: dict[str, list[tuple[str, float]]]) -> str:
    head = [
        "benchmark",
        "images/s",
        "MB/s",
        "wall s",
        "timed s",
        "CPU s",
        "peak RSS MB",
        "others' cores",
        "vs baseline (images/s)",
    ]
    rows = []
    for c in cases:
        rows.append(
            [
                c.name,
                fmt_num(c.images_per_s, 0),
                fmt_num(c.mb_per_s, 1),
                fmt_num(c.median("wall_s"), 3 if c.group == "cli" else 2),
                fmt_num(c.timed_s, 3 if c.group == "cli" else 2),
                fmt_num(c.median("cpu_s"), 2),
                fmt_num(c.median("peak_rss_mb"), 0),
                fmt_num(c.median("background_cores"), 2),
                ", ".join(f"{r:.2f}x {name}" for name, r in ratios.get(c.key, [])) or "-",
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(w) if i in (0, len(cells) - 1) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + (":" if 0 < i < len(widths) - 1 else "-") for i, w in enumerate(widths)
    )
    return "\n".join([line(head), rule + "|", *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------
# Machine description and the image folder


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
            model,
        )
    except (OSError, subprocess.CalledProcessError):
        pass

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: version(p) for p in ("imgrec", "tensorflow", "keras", "pillow", "numpy", "protobuf")
        },
    }


def source_state() -> dict[str, Any]:
    """The commit measured, and what uncommitted changes imgrec/ had (as a hash)."""

    def git(*a: str) -> str:
        run = subprocess.run(["git", *a], cwd=HERE.parent, capture_output=True, text=True)
        return run.stdout.strip() if run.returncode == 0 else ""

    changes = git("status", "--porcelain", "--", "imgrec") + git("diff", "--", "imgrec")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "imgrec_modified": bool(changes),
        "imgrec_changes_sha256": hashlib.sha256(changes.encode()).hexdigest()[:12],
    }


def prepare_images(args: argparse.Namespace) -> Path:
    if args.images:
        return args.images.resolve()
    name = f"photos-{args.count}" + (f"-{args.source.name}" if args.source else "")
    folder = HERE / "data" / name
    stamp = folder / ".made-with"
    spec = json.dumps({"count": args.count, "source": str(args.source)})
    if stamp.is_file() and stamp.read_text() == spec:
        print(f"using the images already built in {folder}")
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, str(HERE / "make_photos.py"), str(folder), "--count", str(args.count)]
    if args.source:
        cmd += ["--source", str(args.source)]
    print("building images:", " ".join(cmd))
    subprocess.run(cmd, check=True)
    stamp.write_text(spec)  # hidden: imgrec ignores it, keras only lists image extensions
    return folder


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, help="image folder to use (class sub-folders)")
    ap.add_argument("--source", type=Path, help="photos for make_photos.py to crop from")
    ap.add_argument("--count", type=int, default=1000, help="images to build (default 1000)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    ap.add_argument("--repeats", type=int, default=5, help="samples per measurement (5)")
    ap.add_argument(
        "--workers",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="workers for the parallel pack rows (default: all cores, at least 2)",
    )
    ap.add_argument(
        "--raw-shards",
        type=int,
        default=8,
        help="also pack raw into this many shards, with 1 and with all workers (default 8;"
        " 0: leave these rows out)",
    )
    ap.add_argument("--size", type=int, default=224, help="read-back resize, square (224)")
    ap.add_argument("--work", type=Path, help="scratch folder for shards (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="before each run, wait up to this many seconds for other processes to use"
        " under a quarter of a core (default 3; 0: do not wait)",
    )
    ap.add_argument(
        "--retry-budget",
        type=float,
        default=120.0,
        help=f"seconds to spend measuring again runs during which other processes used more"
        f" than {BUSY} cores (default 120)",
    )
    ap.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="run the environment as it is, even if it keeps Python from caching bytecode",
    )
    args = ap.parse_args()
    if args.images and args.source:
        ap.error("--images and --source exclude each other")

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    state = source_state()
    src = prepare_images(args)
    n, src_bytes = count_images(src)
    if n == 0:
        sys.exit(f"no images under {src}")
    work = Path(tempfile.mkdtemp(prefix="imgrec-bench-", dir=args.work))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if not args.no_pyc_cache:
        # As after a normal install: compiled bytecode is cached (in a folder of our own,
        # so nothing is written next to the sources), whatever PYTHONDONTWRITEBYTECODE says.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(HERE / "data" / "pycache")
    info = machine()
    print(f"{n} images, {src_bytes / MB:.1f} MB in {src}; scratch {work}")
    print(
        f"{info['cpu_model']}, {info['cores']} cores; Python {info['python']}, "
        f"TensorFlow {info['versions']['tensorflow']}"
    )
    try:
        # Not measured: the datasets the read and inspect rows use, and a first import of
        # everything, so that every measured run finds its files in the page cache and its
        # bytecode compiled.
        imgrec = imgrec_command()
        for fmt in ("encoded", "raw"):
            out = str(work / f"ref-{fmt}")
            subprocess.run(
                [*imgrec, "pack", str(src), out, "--format", fmt, "-q"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
        subprocess.run(
            [sys.executable, "-c", "import tensorflow as t, imgrec.reader; t.keras.utils"],
            check=True,
            env=env,
            stderr=subprocess.DEVNULL,
        )

        retry_budget = args.retry_budget
        cases = build_cases(
            src, n, src_bytes / MB, work, args.workers, args.repeats, args.size, args.raw_shards
        )
        for round_ in range(max(c.repeats for c in cases)):
            todo = [c for c in cases if round_ < c.repeats]
            print(f"round {round_ + 1}: {len(todo)} measurements", flush=True)
            for c in todo:
                sample = take_sample(c, env, args.settle)
                # A run during which other processes were busy is measured again, while the
                # retry budget lasts; the quietest of the tries is kept.
                while sample.background_cores > BUSY and retry_budget > 0:
                    t = time.perf_counter()
                    again = take_sample(c, env, args.settle)
                    retry_budget -= time.perf_counter() - t
                    c.discarded += 1
                    sample = min(sample, again, key=lambda s: s.background_cores)
                c.samples.append(sample)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    by_key = {c.key: c for c in cases}
    ratios = comparisons(by_key, args.workers)
    goals = targets(by_key, args.workers)
    text = table(cases, ratios)
    print()
    print(text)
    print()
    for g in goals:
        print(f"[{'holds' if g['holds'] else 'FAILS'}] {g['target']}: {g['value']}{g['unit']}")
    retried = sum(c.discarded for c in cases)
    if retried:
        print(f"\n{retried} run(s) measured again because other processes were busy")
    busy = [c.key for c in cases if c.median("background_cores") > BUSY]
    if busy:
        print(
            f"\nwarning: other processes used more than {BUSY} cores during {len(busy)}"
            f" of {len(cases)} measurements ({', '.join(busy)}): compare with care"
        )

    results = {
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": info,
        "source": state,
        "source_changed_during_run": source_state() != state,
        "load_average_at_end": os.getloadavg(),
        "images": {"folder": str(src), "count": n, "mb": round(src_bytes / MB, 2)},
        "options": {
            "pyc_cache": not args.no_pyc_cache,
            "settle_s": args.settle,
            "retry_budget_s": args.retry_budget,
            "repeats": args.repeats,
            "workers": args.workers,
            "raw_shards": args.raw_shards,
            "size": args.size,
            "batch": 32,
            "source": str(args.source) if args.source else None,
        },
        "cases": [
            {
                "key": c.key,
                "name": c.name,
                "group": c.group,
                "command": c.cmd,
                "images": c.images,
                "mb": round(c.mbytes, 2),
                "median": {
                    "images_per_s": c.images_per_s,
                    "mb_per_s": c.mb_per_s,
                    "wall_s": c.median("wall_s"),
                    "timed_s": c.timed_s,
                    "cpu_s": c.median("cpu_s"),
                    "peak_rss_mb": c.median("peak_rss_mb"),
                    "background_cores": c.median("background_cores"),
                },
                "ratios": dict(ratios.get(c.key, [])),
                "discarded_busy_samples": c.discarded,
                "samples": [{k: v for k, v in vars(s).items() if k != "stdout"} for s in c.samples],
            }
            for c in cases
        ],
        "targets": goals,
        "table": text,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"results-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path} ({results['duration_s']} s in all)")


if __name__ == "__main__":
    main()
