"""``imgrec pack --runner spark`` on a two-worker Spark standalone cluster on 127.0.0.1,
against the local executor (``--workers 2``): the pack rate of 4,000 photos, Spark's fixed
start-up cost, and the driver's memory at 1,000 and 4,000 photos.

    python benchmarks/spark_pack.py --work /tmp/sbench --keep
    python benchmarks/spark_pack.py --photos DIR --rounds 5

The photos are ``make_photos.py --count 4000 --classes 10`` (made in ``WORK``) unless
``--photos``; ``WORK/src-1000`` (``--subset``) and ``WORK/src-10`` hold hard links to the
first 1,000 and the first 10 of them (sorted paths). The cluster is tests/spark_cluster.py's:
a master and two workers of 1 core and 1 GiB each, their own JVMs, started once and stopped
at the end, however the run ends.

Each pack runs in a fresh process into an emptied OUT, timed as a whole (wall clock):

- local: ``imgrec pack SRC OUT --workers 2 --json -q``
- spark: ``imgrec pack SRC OUT --runner spark --spark-master MASTER --spark-conf
  spark.ui.enabled=false --json -q``, with ``spark_cluster.environment()`` (this Python on
  the executors, everything on 127.0.0.1)

They run as pairs, back to back, the first alternating between rounds; each ratio (spark
images/s over local images/s, i.e. local time over spark time) is taken within a round, and
the medians are printed. Rounds of pairs on 4,000 and on 1,000 photos (``--rounds``), then
on 10 (``--startup-rounds``), each of those rounds followed by a bare PySpark session on the
cluster (``SparkSession.builder.master(MASTER)`` with ``spark.ui.enabled=false``,
``getOrCreate()``, ``stop()``) and the same session running one job of two Python tasks.

Every output is checked: all images packed, none skipped, and every file under OUT (hidden
ones included, the journal's folder too) byte for byte those of a local pack of the same
SRC made first (not timed); any difference stops the run. While each pack runs, the CLI
process (the Python driver) is sampled every 50 ms (``VmRSS`` in /proc/PID/status), and so
is its child JVM (the java process running ``org.apache.spark.deploy.SparkSubmit``).

Before each run: ``os.sync()``, and a wait of up to ``--settle`` s for the machine to be
quiet; after it, not timed, a wait for the application's executors to exit. "Others' cores"
is the CPU used by processes that are neither this script's nor the cluster's, over the run
and that wait, in cores: this script is a subreaper, so what Spark leaves running when its
parent exits (the driver's JVM after the CLI) is adopted, reaped and counted as ours, and
PySpark's forked Python workers, which the kernel reaps (their daemon ignores SIGCHLD), are
sampled. The cluster, and so the executors and their Python workers, run with the
benchmark's bytecode cache, as run.py's children do.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import HERE, IMAGE_SUFFIXES, TICKS, busy_seconds, descendants, imgrec_command
from harness import wait_for_quiet as quiet

sys.path.insert(0, str(HERE.parent / "tests"))
import spark_cluster  # noqa: E402

SMALL = 10  # photos for the fixed start-up cost
KINDS = ("local", "spark")
SUBMIT = b"org.apache.spark.deploy.SparkSubmit"
LAUNCHER = b"org.apache.spark.launcher.Main"  # spark-class's helper: prints the java command
SESSION = """
import sys
from pyspark.sql import SparkSession
s = SparkSession.builder.master(sys.argv[1]).config("spark.ui.enabled", "false").getOrCreate()
if sys.argv[2] == "job":
    assert s.sparkContext.parallelize(range(2), 2).map(lambda x: x + 1).collect() == [1, 2]
s.stop()
"""
EXIT_DEADLINE = 60.0  # seconds for an application's executors to be gone after a run
PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------------------------
# The data


def images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def first_of(photos: Path, dest: Path, n: int) -> int:
    """``dest``: hard links (copies across filesystems) to the first ``n`` images of
    ``photos``, at the same relative paths."""
    shutil.rmtree(dest, ignore_errors=True)
    chosen = images_in(photos)[:n]
    for p in chosen:
        target = dest / p.relative_to(photos)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)
    return len(chosen)


def tree_of(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``, hidden ones included: a file's bytes, None for a folder."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def same_tree(out: Path, reference: Path, what: str) -> None:
    got, want = tree_of(out), tree_of(reference)
    if got == want:
        return
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    differ = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    sys.exit(
        f"{what}: {out} is not byte-identical to the local pack {reference}:"
        f" {len(differ)} differ {differ[:5]}, {len(missing)} missing {missing[:5]},"
        f" {len(extra)} extra {extra[:5]}"
    )


# --------------------------------------------------------------------------------------------
# Measuring one run


def status_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (0, 0 once it is gone or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    found = dict.fromkeys(("VmRSS", "VmHWM"), 0)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def is_driver_jvm(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        os.path.basename(argv[0]) == b"java" and SUBMIT in argv and LAUNCHER not in argv
    )  # fmt: skip


def process_table() -> dict[int, tuple[int, float, bytes]]:
    """Every process: its parent, its CPU s (utime + stime) and its name (comm)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")]
            table[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, comm)
    return table


class Monitor(threading.Thread):
    """Samples, every ``interval`` s, the RSS of the process ``root`` and of its descendant
    JVM running SparkSubmit (looked for each time: spark-submit becomes java by exec), and
    the CPU of PySpark's forked Python workers: their daemon ignores SIGCHLD, so the kernel
    reaps them and their CPU reaches no parent's count."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.rss = self.hwm = 0  # KiB, the root's
        self.jvm_rss = self.jvm_hwm = 0  # KiB, the JVM's
        self.forked: dict[int, float] = {}  # pid: CPU s used since the first sample
        self._base: dict[int, float] = {}  # pid: CPU s at the first sample (earlier runs')
        self._daemons: dict[tuple[int, bytes], bool] = {}
        self._done = threading.Event()

    def _is_daemon(self, pid: int, comm: bytes) -> bool:
        if (pid, comm) not in self._daemons:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return False
            self._daemons[pid, comm] = comm.startswith(b"python") and b"pyspark.daemon" in cmd
        return self._daemons[pid, comm]

    def run(self) -> None:
        first = True
        while not self._done.is_set():
            table = process_table()
            rss, hwm = status_kib(self.root)
            self.rss, self.hwm = max(self.rss, rss), max(self.hwm, hwm)
            children: dict[int, list[int]] = {}
            for pid, (ppid, cpu, comm) in table.items():
                children.setdefault(ppid, []).append(pid)
                parent = table.get(ppid)
                if parent and self._is_daemon(pid, comm) and self._is_daemon(ppid, parent[2]):
                    if first:
                        self._base[pid] = cpu
                    self.forked[pid] = cpu - self._base.get(pid, 0.0)
            todo = list(children.get(self.root, []))
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                if is_driver_jvm(pid):
                    rss, hwm = status_kib(pid)
                    self.jvm_rss, self.jvm_hwm = max(self.jvm_rss, rss), max(self.jvm_hwm, hwm)
            first = False
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat from field 3 (state) on; [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    return stat[stat.rindex(b")") + 2 :].split()


def tree_cpu(pid: int) -> float:
    """CPU s of ``pid`` and of the children it has reaped (utime, stime, cutime, cstime)."""
    fields = stat_fields(pid)
    return sum(int(v) for v in fields[11:15]) / TICKS if fields else 0.0


def ours_cpu(cluster: spark_cluster.Cluster) -> float:
    """CPU s used so far by this process, the children it reaped, and the cluster's JVMs
    (with the executors they reaped)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + reaped.ru_utime + reaped.ru_stime
    return cpu + sum(tree_cpu(p.pid) for p in cluster.processes)


def adopted(cluster: spark_cluster.Cluster) -> list[int]:
    """This process's children that are not the cluster's: what Spark left running when its
    parent exited (the driver's JVM, an executor's Python daemon), adopted as subreaper."""
    me, known = os.getpid(), {p.pid for p in cluster.processes}
    return [
        pid
        for pid in descendants(me)
        if pid not in known and (f := stat_fields(pid)) and int(f[1]) == me
    ]


def after_run(cluster: spark_cluster.Cluster, reaped: set[int]) -> bool:
    """Wait for the run's executors and leftovers to exit, reaping the adopted ones (into
    ``reaped``); True if all went in time."""
    deadline = time.monotonic() + EXIT_DEADLINE
    while time.monotonic() < deadline:
        left = 0
        for pid in adopted(cluster):
            try:
                if os.wait4(pid, os.WNOHANG)[0] == pid:
                    reaped.add(pid)
                else:
                    left += 1
            except ChildProcessError:
                pass
        if not left and not cluster.executors():
            return True
        time.sleep(0.1)
    return False


@dataclass
class Run:
    wall_s: float
    others: float  # cores used by other processes, over the run and the wait after it
    driver_mib: float  # peak VmRSS of the CLI process, sampled
    driver_hwm_mib: float  # its VmHWM at the last sample
    jvm_mib: float  # the same for the driver's JVM (0 for the local executor)
    jvm_hwm_mib: float
    stdout: str


def run_once(
    cmd: list[str], env: dict[str, str], cluster: spark_cluster.Cluster, settle: float
) -> Run:
    os.sync()  # what earlier runs wrote or deleted, so that this run's fsync waits for its own
    if settle > 0:
        quiet(settle)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cpu, busy = ours_cpu(cluster), busy_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        monitor = Monitor(proc.pid)
        monitor.start()
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        monitor.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        reaped: set[int] = set()  # adopted and reaped here: counted in RUSAGE_CHILDREN
        gone = after_run(cluster, reaped)
        span = time.perf_counter() - start
        cpu = ours_cpu(cluster) - cpu
        cpu += sum(used for pid, used in monitor.forked.items() if pid not in reaped)
        others = max(0.0, busy_seconds() - busy - cpu) / span
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-25:])
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    if not gone:
        print(f"warning: executors or processes left running {EXIT_DEADLINE:.0f} s after:"
              f" {' '.join(cmd)}", flush=True)  # fmt: skip
    return Run(
        wall, others, monitor.rss / 1024, monitor.hwm / 1024, monitor.jvm_rss / 1024,
        monitor.jvm_hwm / 1024, stdout,
    )  # fmt: skip


def checked(run: Run, n: int, out: Path, reference: Path, what: str) -> Run:
    """``run``'s pack wrote ``n`` records, skipped none, and the local pack's bytes."""
    manifest = json.loads(run.stdout)
    if manifest["records"] != n or manifest["skipped"]:
        sys.exit(f"{what}: packed {manifest['records']} records and skipped"
                 f" {manifest['skipped']}, expected {n} and none")  # fmt: skip
    if out != reference:
        same_tree(out, reference, what)
    return run


# --------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Rows:
    """The runs of one source folder, by kind (local, spark, session, job)."""

    n: int
    runs: dict[str, list[Run]]

    def wall(self, kind: str) -> float:
        return float(statistics.median(r.wall_s for r in self.runs[kind]))

    def ratios(self) -> list[float]:  # spark images/s over local images/s, round by round
        pairs = zip(self.runs["local"], self.runs["spark"], strict=True)
        return [local.wall_s / spark.wall_s for local, spark in pairs]


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, cluster: spark_cluster.Cluster):
        self.args, self.work, self.cluster = args, work, cluster
        self.local_env = dict(os.environ)
        self.spark_env = spark_cluster.environment()

    def pack(self, kind: str, src: Path, out: Path, n: int, reference: Path) -> Run:
        cmd = [*imgrec_command(), "pack", str(src), str(out)]
        if kind == "local":
            cmd += ["--workers", str(self.args.workers)]
        else:
            cmd += ["--runner", "spark", "--spark-master", self.cluster.master]
            cmd += ["--spark-conf", "spark.ui.enabled=false"]
        cmd += ["--json", "-q"]
        shutil.rmtree(out, ignore_errors=True)
        env = self.local_env if kind == "local" else self.spark_env
        run = run_once(cmd, env, self.cluster, self.args.settle)
        return checked(run, n, out, reference, f"{kind} pack of {src}")

    def session(self, what: str) -> Run:
        cmd = [sys.executable, "-c", SESSION, self.cluster.master, what]
        return run_once(cmd, self.spark_env, self.cluster, self.args.settle)

    def pairs(self, src: Path, n: int, rounds: int, sessions: bool = False) -> Rows:
        reference = self.work / f"ref-{n}"
        rows = Rows(n, {kind: [] for kind in (*KINDS, "session", "job")})
        for r in range(rounds):
            order = KINDS if r % 2 == 0 else KINDS[::-1]
            got = {k: self.pack(k, src, self.work / f"out-{k}-{n}", n, reference) for k in order}
            for kind in KINDS:
                rows.runs[kind].append(got[kind])
            line = (f"{n:,} photos, round {r + 1} ({order[0]} first):"
                    f" local {got['local'].wall_s:.2f} s"
                    f" ({n / got['local'].wall_s:,.0f} images/s), spark {got['spark'].wall_s:.2f} s"
                    f" ({n / got['spark'].wall_s:,.0f} images/s), spark/local"
                    f" {rows.ratios()[-1]:.3f}; driver peak RSS: Python"
                    f" {got['spark'].driver_mib:.1f} MiB (local {got['local'].driver_mib:.1f}),"
                    f" JVM {got['spark'].jvm_mib:.1f} MiB; others' cores"
                    f" {', '.join(f'{got[k].others:.2f}' for k in order)}")  # fmt: skip
            if sessions:
                for what in ("session", "job"):
                    rows.runs[what].append(self.session(what))
                line += (f"; session {rows.runs['session'][-1].wall_s:.2f} s, with a job"
                         f" {rows.runs['job'][-1].wall_s:.2f} s")  # fmt: skip
            print(line, flush=True)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="a folder of class folders (default: made)")
    parser.add_argument("--count", type=int, default=4000, help="photos to make (default 4000)")
    parser.add_argument("--subset", type=int, default=1000, help="the smaller set (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs on both sets (default 3)")
    parser.add_argument("--startup-rounds", type=int, default=5, help="pairs on 10 (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="the local executor's --workers")
    parser.add_argument("--settle", type=float, default=3.0, help="wait up to S s for quiet")
    parser.add_argument("--work", type=Path, help="where the data goes (default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep --work afterwards")
    args = parser.parse_args()
    made = args.work is None or not args.work.exists()  # else only our folders are removed
    work = args.work or Path(tempfile.mkdtemp(prefix="imgrec-spark-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    ours = ["cluster", f"src-{args.subset}", f"src-{SMALL}", "ref-[0-9]*", "out-local-[0-9]*"]
    ours += ["out-spark-[0-9]*"] + ([] if args.photos else [f"photos-{args.count}*"])
    try:
        run(work, args)
    finally:
        if not args.keep:
            for folder in [work] if made else [p for g in ours for p in work.glob(g)]:
                shutil.rmtree(folder, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    # Spark leaves processes running when their parent exits (the driver's JVM after the
    # CLI); as a subreaper this process adopts them, so that their CPU is counted as ours.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: not a subreaper; others' cores may count Spark's own leftovers")
    photos = args.photos or work / f"photos-{args.count}"
    if not args.photos and not photos.exists():
        part = work / f"photos-{args.count}.part"
        shutil.rmtree(part, ignore_errors=True)
        make = [sys.executable, str(HERE / "make_photos.py"), str(part)]
        make += ["--count", str(args.count), "--classes", "10"]
        subprocess.run(make, check=True, capture_output=True)
        part.rename(photos)
    n = len(images_in(photos))
    if not SMALL < args.subset < n:
        sys.exit(f"--subset must be between {SMALL} and the {n} images of {photos}")
    subset = first_of(photos, work / f"src-{args.subset}", args.subset)
    small = first_of(photos, work / f"src-{SMALL}", SMALL)
    sources = {n: photos, subset: work / f"src-{subset}", small: work / f"src-{small}"}
    print(f"{n:,} images in {photos}; the first {subset:,} and {small} linked in"
          f" {work}/src-{subset} and src-{small}", flush=True)  # fmt: skip

    # As run.py runs its children: bytecode cached in a folder of our own (see the README);
    # set here, before the cluster starts, so that the executors' Python workers have it too.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(HERE / "data" / "pycache")
    load = os.getloadavg()
    started = time.perf_counter()
    with spark_cluster.cluster(work / "cluster", workers=2, cores=1) as cluster:
        print(f"cluster {cluster.master}: {cluster.alive_workers()} workers of 1 core, 1 GiB"
              f" (up in {time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
        bench = Bench(args, work, cluster)
        # Not timed: the local packs every output is compared with, and a first Spark pack
        # (the files, the JVM's jars, modules and bytecode into the caches).
        for size, src in sources.items():
            ref = work / f"ref-{size}"
            bench.pack("local", src, ref, size, ref)
        bench.pack("spark", sources[small], work / f"out-spark-{small}", small,
                   work / f"ref-{small}")  # fmt: skip
        print("reference local packs made; a first Spark pack matches its bytes", flush=True)
        big = bench.pairs(photos, n, args.rounds)
        mid = bench.pairs(sources[subset], subset, args.rounds)
        tiny = bench.pairs(sources[small], small, args.startup_rounds, sessions=True)
    report(big, mid, tiny, load, time.perf_counter() - started)


def spread(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}"


def most(runs: list[Run], attr: str) -> str:
    values: list[float] = [getattr(r, attr) for r in runs]
    return f"{max(values):.1f} ({spread(values, 1)})"


def report(big: Rows, mid: Rows, tiny: Rows, load: tuple[float, ...], seconds: float) -> None:
    print(f"\nload average before the cluster started: {', '.join(f'{v:.2f}' for v in load)};"
          f" run time {seconds:.0f} s; every output byte-identical to the local one")  # fmt: skip
    print("\n| photos | local wall s | spark wall s | local images/s | spark images/s |"
          " spark / local (median of per-round ratios) | rounds |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows in (big, mid, tiny):
        ratios = rows.ratios()
        print(f"| {rows.n:,} | {rows.wall('local'):.2f} | {rows.wall('spark'):.2f} |"
              f" {rows.n / rows.wall('local'):,.0f} | {rows.n / rows.wall('spark'):,.0f} |"
              f" {statistics.median(ratios):.3f}x ({spread(ratios, 3)}) |"
              f" {len(ratios)} |")  # fmt: skip
    added = big.n - mid.n
    if added > 0:
        marginal = {k: added / (big.wall(k) - mid.wall(k)) for k in KINDS}
        print(f"\nfrom {mid.n:,} to {big.n:,} photos (medians): local {marginal['local']:,.0f}"
              f" images/s, spark {marginal['spark']:,.0f} images/s for the added"
              f" {added:,}")  # fmt: skip

    fixed = tiny.wall("spark") - tiny.wall("local")
    session, job = tiny.wall("session"), tiny.wall("job")
    print(f"\n| {tiny.n} photos, fresh process (median of {len(tiny.runs['spark'])}) | wall s |")
    print("| --- | ---: |")
    print(f"| imgrec pack, local executor | {tiny.wall('local'):.2f} |")
    print(f"| imgrec pack --runner spark | {tiny.wall('spark'):.2f} |")
    print(f"| PySpark session: start + stop | {session:.2f} |")
    print(f"| PySpark session: start, one job of 2 Python tasks, stop | {job:.2f} |")
    print(f"\nSpark's fixed start-up cost (spark - local on {tiny.n} photos): {fixed:.2f} s;"
          f" the session's start and stop {session:.2f} s, the first Python tasks on the"
          f" executors {job - session:.2f} s more, the rest of imgrec's Spark pack"
          f" {tiny.wall('spark') - job:.2f} s more")  # fmt: skip

    print(
        "\n| photos | Python driver peak VmRSS MiB (spark) | its VmHWM MiB | JVM driver peak"
        " VmRSS MiB | its VmHWM MiB | local executor's main process peak VmRSS MiB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows in (tiny, mid, big):
        sp, lo = rows.runs["spark"], rows.runs["local"]
        print(f"| {rows.n:,} | {most(sp, 'driver_mib')} | {most(sp, 'driver_hwm_mib')} |"
              f" {most(sp, 'jvm_mib')} | {most(sp, 'jvm_hwm_mib')} |"
              f" {most(lo, 'driver_mib')} |")  # fmt: skip
    print("(largest over the rounds, and the range)")


if __name__ == "__main__":
    main()
