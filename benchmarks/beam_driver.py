"""The Beam driver's memory and time over a simulated bucket listing of N objects.

    python benchmarks/beam_driver.py [--counts 100000,1000000] [--work DIR]

Each row runs in a fresh process. The listing is simulated: ``storage.iter_tree`` yields N
objects under ``s3://bucket/src`` (100 class folders, sizes and dates made up), and the
header look returns made-up facts (400 x 300 RGB) without reading anything. Everything
else is imgrec's code as a Beam run uses it, on the driver:

- ``streamed`` (the Beam executor today): the listing sorted through files on disk, the
  listing written to OUT for the workers, the probe pipeline run on the DirectRunner in this
  process (its "workers" are this process too, so their time and memory count here), the
  answers classified, the plan made, the journal opened and the shards' work list written.
- ``in memory`` (how the driver worked before: the same steps with every list in memory and
  the header look on the driver, ``scan.classify`` over a list).

Peak memory is the process's peak RSS (``ru_maxrss``) minus its RSS after the imports; it
counts pages of files only while they are mapped, and nothing here maps them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = 100


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(count: int, mode: str, work: Path) -> dict[str, float]:
    """In a fresh process: one row."""
    import apache_beam  # noqa: F401  (its import is not the driver's work)

    from imgrec import PackOptions
    from imgrec.core import spool, storage
    from imgrec.core.storage import Folder
    from imgrec.packing.executors import beam, tasks
    from imgrec.packing.journal import Journal
    from imgrec.packing.scan import classify, listing
    from imgrec.packing.sharding import plan_shards

    src = "s3://bucket/src"

    def fake_tree(url: str):  # type: ignore[no-untyped-def]
        assert url == src
        for k in range(count):
            yield f"c{k % CLASSES:03d}/img{k:09d}.jpg", (20_000 + k % 7_919, 1_700_000_000 * 10**9)

    def fake_probes(items, max_pixels, threads):  # type: ignore[no-untyped-def]
        for _ in items:
            yield (400, 300, 3)

    storage.iter_tree = fake_tree  # type: ignore[assignment]
    tasks.probe_items = fake_probes  # type: ignore[assignment]
    out = Folder(Path(tempfile.mkdtemp(dir=work)))
    opts = PackOptions(runner="beam")
    base = rss_mb()
    times: dict[str, float] = {}
    start = time.perf_counter()
    if mode == "streamed":
        executor = beam.BeamExecutor()
        found = executor.scan_source(src, out, opts, lambda *a: None)
        store = found.store
    else:
        store = spool.MEMORY
        walked = listing(src, out.where, opts, lambda *a: None)
        looked = zip(walked.items, fake_probes(walked.items, 0, 1), strict=True)
        found = classify(src, opts, walked, looked, lambda *a: None)
    times["scan_s"] = time.perf_counter() - start
    times["peak_after_scan_mb"] = peak_mb() - base
    mark = time.perf_counter()
    specs = plan_shards(found.candidates, found.estimate, opts, store)
    times["plan_s"] = time.perf_counter() - mark
    times["peak_after_plan_mb"] = peak_mb() - base
    mark = time.perf_counter()
    journal = Journal.open(out, opts, found.walk.labels, found.files, resume=False)
    tasks.write_work(out, journal, specs)
    times["journal_and_work_list_s"] = time.perf_counter() - mark
    times["total_s"] = time.perf_counter() - start
    assert len(found.candidates) == count and sum(len(s.items) for s in specs) == count
    return {
        "count": count,
        "shards": len(specs),
        "rss_after_imports_mb": round(base, 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "peak_over_imports_mb": round(peak_mb() - base, 1),
        **{k: round(v, 2) for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="100000,1000000")
    parser.add_argument("--modes", default="streamed,in memory")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--one", nargs=2, metavar=("COUNT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="imgrec-beam-driver-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], work)))
        return
    rows = []
    print(
        "| mode | listed objects | shards | peak RSS over imports | scan | plan"
        " | journal + work list | total |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in args.modes.split(","):
        for count in map(int, args.counts.split(",")):
            done = subprocess.run(
                [sys.executable, __file__, "--work", str(work), "--one", str(count), mode],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"row {mode} {count} failed")
            row = json.loads(done.stdout.strip().splitlines()[-1]) | {"mode": mode}
            rows.append(row)
            print(
                f"| {mode} | {count:,} | {row['shards']} | {row['peak_over_imports_mb']} MB"
                f" | {row['scan_s']} s | {row['plan_s']} s | {row['journal_and_work_list_s']} s"
                f" | {row['total_s']} s |",
                flush=True,
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
