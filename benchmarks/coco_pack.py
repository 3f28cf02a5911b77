"""``imgrec pack --annotations`` with a COCO-sized file: the main process's peak memory, the
largest worker's, and the wall time, at a tenth of COCO's size and at all of it, each next
to the same pack without annotations in the same run.

    python benchmarks/coco_pack.py                          # 12,000 and 120,000 images
    python benchmarks/coco_pack.py --sizes 12000,48000,120000 --rounds 3 --work /tmp/cp --keep
    python benchmarks/coco_pack.py --keypoints 17   # each annotation with 17 keypoints too

For each size N, a folder of N tiny PNGs (16 x 16; a few distinct images hard-linked under
the names ``000000000000.png``, ... , flat, as COCO's ``train2017/``) and a COCO file for
them from ``coco_scale.make``: N * 860,000 / 120,000 annotations (7.17 per image on
average, on images drawn at random, so some have none), each with a 20-point polygon and a
box inside its image, categories COCO's 80 ids in 1..90. Both are made once in ``--work``
(default a temporary folder, removed at the end unless ``--keep``).

Each pack is ``imgrec pack SRC OUT --workers 2 --json -q [--annotations FILE]`` in a fresh
process, run through a wrapper that reports, as it exits, its own peak RSS (``ru_maxrss`` of
``RUSAGE_SELF``: the main process alone) and the largest peak among the processes it
reaped (``RUSAGE_CHILDREN``: imgrec's workers). The rows are taken round-robin (every row
once, then again), and the table shows medians. Every annotated pack is checked: all N
images packed, none skipped, and the manifest's ``stats.objects.objects`` equal to the
file's annotations.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import coco_scale
from harness import MB, TreeMonitor, busy_seconds, wait_for_quiet

SIDE = 16  # the images are SIDE x SIDE pixels
DISTINCT = 8  # distinct images, hard-linked under the N names
NAME = "{:012d}.png"
PER_IMAGE = coco_scale.ANNOTATIONS / coco_scale.IMAGES  # COCO's 7.17 objects per image
MIB = 1024 * 1024
# The main process reports, as it exits, its own peak and its reaped children's largest
# (ru_maxrss, KiB). multiprocessing's exit handler, registered later, runs first (atexit
# runs last-registered first), so the workers are reaped by then.
MAIN = (
    "import atexit, resource, runpy, sys;"
    "atexit.register(lambda: print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr));"
    "sys.argv = ['imgrec'] + sys.argv[1:]; runpy.run_module('imgrec', run_name='__main__')"
)


def tiny_box(rng: random.Random) -> tuple[float, float, float, float]:
    """A box ``[x, y, w, h]`` inside a SIDE x SIDE image (x + w <= 16 after rounding)."""
    x, y = round(rng.uniform(0, 10), 2), round(rng.uniform(0, 10), 2)
    w, h = round(rng.uniform(1, 6), 2), round(rng.uniform(1, 6), 2)
    return x, y, w, h


def annotations_for(images: int) -> int:
    return round(images * PER_IMAGE)


def make_images(folder: Path, count: int, distinct: Path) -> None:
    """``count`` files in ``folder``, each a hard link to one of the distinct images."""
    if folder.is_dir() and sum(1 for _ in os.scandir(folder)) == count:
        return
    shutil.rmtree(folder, ignore_errors=True)
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    sources = sorted(distinct.glob("*.png"))
    for i in range(count):
        target = part / NAME.format(i)
        try:
            os.link(sources[i % len(sources)], target)
        except OSError:  # another file system, or no hard links: copy
            shutil.copyfile(sources[i % len(sources)], target)
    part.rename(folder)


def make_distinct(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for k in range(DISTINCT):
        path = folder / f"{k}.png"
        if not path.exists():
            pixels = bytes(rng.randrange(256) for _ in range(SIDE * SIDE * 3))
            Image.frombytes("RGB", (SIDE, SIDE), pixels).save(path)


def make_coco(path: Path, images: int, keypoints: int = 0) -> None:
    if path.exists():
        return
    part = path.with_suffix(".part")
    coco_scale.make(part, images, annotations_for(images), size=(SIDE, SIDE), name=NAME,
                    box=tiny_box, keypoints=keypoints)  # fmt: skip
    part.rename(path)


@dataclass
class Run:
    wall_s: float
    main_mib: float  # the main process's ru_maxrss
    worker_mib: float  # the largest reaped child's ru_maxrss
    tree_mb: float  # sampled peak of the summed RSS of the process tree
    others: float  # cores other processes used meanwhile
    records: int
    skipped: int
    objects: int | None  # the manifest's stats.objects.objects


def pack(src: Path, out: Path, annotations: Path | None, workers: int) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", MAIN, "pack", str(src), str(out), "--workers", str(workers)]
    cmd += ["--json", "-q"] + (["--annotations", str(annotations)] if annotations else [])
    os.sync()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        busy, start = busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        monitor = TreeMonitor(proc.pid, 0.05)
        monitor.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        busy = busy_seconds() - busy
        monitor.stop()
        stdout.seek(0)
        stderr.seek(0)
        said, err = stdout.read().decode(), stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    self_kib, children_kib = (int(v) for v in err.split("PEAK")[-1].split()[:2])
    result = json.loads(said)
    manifest = json.loads((out / "manifest.json").read_text())
    objects = manifest["stats"].get("objects", {}).get("objects")
    return Run(
        wall_s=wall,
        main_mib=self_kib / 1024,
        worker_mib=children_kib / 1024,
        tree_mb=monitor.peak / MB,
        others=max(0.0, busy - usage.ru_utime - usage.ru_stime) / wall,
        records=result["records"],
        skipped=len(result["skipped"]),
        objects=objects,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="12000,120000", help="image counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="samples per row (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0, help="wait up to S s for quiet")
    parser.add_argument("--work", type=Path, help="where the data goes (default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep --work afterwards")
    parser.add_argument("--keypoints", type=int, default=0, help="keypoints per annotation")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="imgrec-coco-pack-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, sizes, args.rounds, args.workers, args.settle, args.keypoints)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(
    work: Path, sizes: list[int], rounds: int, workers: int, settle: float, keypoints: int = 0
) -> None:
    kp = f"-kp{keypoints}" if keypoints else ""
    start = time.perf_counter()
    make_distinct(work / "distinct")
    for n in sizes:
        t = time.perf_counter()
        make_images(work / f"src-{n}", n, work / "distinct")
        make_coco(work / f"coco-{n}{kp}.json", n, keypoints)
        size = (work / f"coco-{n}{kp}.json").stat().st_size / 1e6
        print(f"made {n:,} images and {annotations_for(n):,} annotations ({size:,.0f} MB)"
              f" in {time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
    rows = [(n, annotated) for n in sizes for annotated in (False, True)]
    runs: dict[tuple[int, bool], list[Run]] = {row: [] for row in rows}
    for r in range(rounds):
        for n, annotated in rows:
            wait_for_quiet(settle)
            coco = work / f"coco-{n}{kp}.json" if annotated else None
            got = pack(work / f"src-{n}", work / "out", coco, workers)
            runs[n, annotated].append(got)
            print(f"round {r + 1}: {n:,} {'with' if annotated else 'without'} annotations:"
                  f" {got.wall_s:.1f} s, main {got.main_mib:.1f} MiB,"
                  f" worker {got.worker_mib:.1f} MiB", flush=True)  # fmt: skip
    shutil.rmtree(work / "out", ignore_errors=True)
    report(sizes, runs)
    print(f"\n{rounds} rounds, {time.perf_counter() - start:.0f} s in all")


def report(sizes: list[int], runs: dict[tuple[int, bool], list[Run]]) -> None:
    def med(row: tuple[int, bool], what: str) -> float:
        return statistics.median(getattr(r, what) for r in runs[row])

    print()
    print("|       N | annotations | wall s | main peak MiB | largest worker MiB |"
          " tree MB | records | skipped |   objects | others' cores |")  # fmt: skip
    print("|--------:|-------------|-------:|--------------:|-------------------:|"
          "--------:|--------:|--------:|----------:|--------------:|")  # fmt: skip
    problems = []
    for n in sizes:
        for annotated in (False, True):
            row = (n, annotated)
            last = runs[row][-1]
            counts = {(r.records, r.skipped, r.objects) for r in runs[row]}
            if len(counts) > 1:
                problems.append(f"{n:,} {annotated}: counts differ between rounds: {counts}")
            objects = "-" if last.objects is None else f"{last.objects:,}"
            print(f"| {n:>7,} | {'yes' if annotated else 'no':11s} | {med(row, 'wall_s'):6.1f} |"
                  f" {med(row, 'main_mib'):13.1f} | {med(row, 'worker_mib'):18.1f} |"
                  f" {med(row, 'tree_mb'):7.1f} | {last.records:7,} | {last.skipped:7,} |"
                  f" {objects:>9} | {max(r.others for r in runs[row]):13.2f} |")  # fmt: skip
            if annotated and (last.records, last.skipped, last.objects) != (
                n,
                0,
                annotations_for(n),
            ):
                problems.append(
                    f"{n:,}: {last.records:,} records, {last.skipped:,} skipped, objects"
                    f" {last.objects} (expected {n:,}, 0, {annotations_for(n):,})"
                )
    print()
    for n in sizes:
        with_, without = (n, True), (n, False)
        extra = med(with_, "main_mib") - med(without, "main_mib")
        slower = med(with_, "wall_s") - med(without, "wall_s")
        memory = med(with_, "main_mib") / med(without, "main_mib")
        time_ = med(with_, "wall_s") / med(without, "wall_s")
        print(f"{n:,} images: with annotations the main process peaks at {memory:.2f}x the"
              f" baseline ({extra:+.1f} MiB), the pack takes {time_:.2f}x ({slower:+.1f} s,"
              f" {slower / n * 1e6:.0f} us per image)")  # fmt: skip
    small, large = sizes[0], sizes[-1]
    if large > small:
        for annotated in (False, True):
            a, b = med((small, annotated), "main_mib"), med((large, annotated), "main_mib")
            print(f"main peak {'with' if annotated else 'without'} annotations,"
                  f" {small:,} -> {large:,} images: {a:.1f} -> {b:.1f} MiB"
                  f" ({(b - a) * MIB / (large - small):.0f} bytes per added image)")  # fmt: skip
        grow = [med((n, True), "main_mib") - med((n, False), "main_mib") for n in sizes]
        added = (grow[-1] - grow[0]) * MIB / (large - small)
        print(f"the annotations' share of the main peak, {small:,} -> {large:,} images:"
              f" {grow[0]:+.1f} -> {grow[-1]:+.1f} MiB"
              f" ({added:.0f} bytes per added image)")  # fmt: skip
        per = [(med((n, True), "wall_s") - med((n, False), "wall_s")) / n * 1e6 for n in sizes]
        each = ", ".join(f"{n:,}: {p:.0f} us" for n, p in zip(sizes, per, strict=True))
        print(f"extra time per image with annotations (index, lookups, join): {each}")
    for problem in problems:
        print("CHECK FAILED:", problem)
    if problems:
        sys.exit(1)
    print("checked: every annotated pack has all images, none skipped, and stats.objects.objects"
          " equal to the file's annotations")  # fmt: skip


if __name__ == "__main__":
    main()
