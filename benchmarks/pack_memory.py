"""Peak memory of ``imgrec pack`` at several dataset sizes: the summed RSS of the process
tree in MB (sampled every 10 ms, as run.py samples it) and the main process's own peak
(``ru_maxrss``) in MiB.

    python benchmarks/pack_memory.py SRC [SRC ...] [--tree /path/to/imgrec] [--runs N]

Each SRC is packed with --workers 2, --workers 1 and --format raw --workers 2 (the first
N of these with ``--runs N``) into a scratch folder; ``--tree`` runs another imgrec source
tree (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import MB, TreeMonitor

RUNS = (["--workers", "2"], ["--workers", "1"], ["--format", "raw", "--workers", "2"])
# The main process reports its own peak as it exits (ru_maxrss of RUSAGE_SELF, KiB).
MAIN = (
    "import atexit, resource, runpy, sys;"
    "atexit.register(lambda: print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
    " file=sys.stderr));"
    "sys.argv = ['imgrec'] + sys.argv[1:]; runpy.run_module('imgrec', run_name='__main__')"
)


def measure(src: Path, out: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", MAIN, "pack", str(src), str(out), "-q", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    monitor = TreeMonitor(proc.pid, 0.01)
    monitor.start()
    _, err = proc.communicate()
    monitor.stop()
    if proc.returncode != 0:
        sys.exit(err.decode(errors="replace"))
    main_kib = int(err.decode().split("PEAK")[-1].split()[0])
    return monitor.peak / MB, main_kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("--tree", type=Path, help="imgrec source tree to run (PYTHONPATH)")
    ap.add_argument("--runs", type=int, default=len(RUNS), help="the first N option sets")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.tree:
        env["PYTHONPATH"] = str(args.tree.resolve())
    with tempfile.TemporaryDirectory() as scratch:
        for options in RUNS[: args.runs]:
            for src in args.sources:
                tree, main_mib = measure(src, Path(scratch) / "out", options, env)
                print(f"{' '.join(options):28s} {src.name:14s} tree {tree:6.1f} MB"
                      f"  main process {main_mib:6.1f} MiB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
