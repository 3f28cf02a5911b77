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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import read_rows
from harness import (
    BUSY,
    HERE,
    MB,
    PAGE,
    Case,
    count_images,
    expect_count,
    expect_pack,
    fmt_num,
    fresh,
    imgrec_command,
    ratio,
    take_sample,
)
from read_rows import Data

# Targets the project has set itself (see benchmarks/README.md); the read targets are in
# read_rows.py.
HELP_MAX_S = 0.3
RAW_SCALING_MIN = 1.7
ENCODED_MIN = 3000  # images/s, whole process, with all the workers (issue 17)


def build_cases(
    src: Path,
    n: int,
    src_mb: float,
    work: Path,
    workers: int,
    repeats: int,
    raw_shards: int,
    reads: list[Case],
    cli: bool = True,
) -> list[Case]:
    """The pack rows, then ``reads``, then the CLI rows (if ``cli``)."""
    imgrec = imgrec_command()
    py = sys.executable
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
    cases += reads
    if not cli:
        return cases
    cli_repeats = max(5, repeats)
    inspect = [*imgrec, "inspect", str(work / "ref-encoded")]
    cases.append(Case("cli_help", "imgrec --help", "cli", [*imgrec, "--help"], cli_repeats))
    cases.append(Case("cli_inspect", "imgrec inspect OUT", "cli", inspect, cli_repeats))
    return cases


# --------------------------------------------------------------------------------------------
# Ratios, targets and the table


def comparisons(
    cases: dict[str, Case], workers: int, psnr: dict[str, Any] | None
) -> dict[str, list[tuple[str, float]]]:
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
    out.update(read_rows.comparisons(cases, psnr))
    return out


def targets(
    cases: dict[str, Case], workers: int, psnr: dict[str, Any] | None, size: int
) -> list[dict[str, Any]]:
    found = []

    def add(name: str, value: float, limit: float, holds: bool, unit: str) -> None:
        found.append(
            {"target": name, "value": round(value, 3), "limit": limit, "unit": unit, "holds": holds}
        )

    if "cli_help" in cases:
        wall = cases["cli_help"].median("wall_s")
        add(f"imgrec --help under {HELP_MAX_S} s", wall, HELP_MAX_S, wall < HELP_MAX_S, "s")
    tfw = cases["pack_tf_writer"]
    for w in sorted({1, workers}):
        c = cases[f"pack_encoded_w{w}"]
        r = ratio(c, tfw)
        add(f"{c.name} faster than the TF writer loop", r, 1.0, r > 1.0, "x")
    c = cases[f"pack_encoded_w{workers}"]
    speed = c.images_per_s or 0.0
    holds = speed >= ENCODED_MIN
    add(f"{c.name} >= {ENCODED_MIN} images/s", speed, ENCODED_MIN, holds, " images/s")
    raw1, rawn = cases["pack_raw_w1"], cases[f"pack_raw_w{workers}"]
    r = ratio(rawn, raw1)
    add(
        f"pack --format raw: {workers} workers >= {RAW_SCALING_MIN}x 1 worker",
        r,
        RAW_SCALING_MIN,
        r >= RAW_SCALING_MIN,
        "x",
    )
    if "read_keras" in cases:
        read_rows.targets(cases, psnr, size, add)
    return found


def table(
    cases: list[Case], ratios: dict[str, list[tuple[str, float]]], notes: dict[str, str]
) -> str:
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
        # A later pass of another row's process: its wall, CPU and memory are on that row.
        process = (lambda v: "-") if c.view_of else (lambda v: v)
        versus = [f"{r:.2f}x {name}" for name, r in ratios.get(c.key, [])]
        versus += [notes[c.key]] if c.key in notes else []
        rows.append(
            [
                c.name,
                fmt_num(c.images_per_s, 0),
                fmt_num(c.mb_per_s, 1),
                process(fmt_num(c.median("wall_s"), 3 if c.group == "cli" else 2)),
                fmt_num(c.timed_s, 3 if c.group == "cli" else 2),
                process(fmt_num(c.median("cpu_s"), 2)),
                process(fmt_num(c.median("peak_rss_mb"), 0)),
                process(fmt_num(c.median("background_cores"), 2)),
                ", ".join(versus) or "-",
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


def build_images(count: int, source: Path | None, large: bool = False) -> Path:
    """``make_photos.py``'s images, built once into benchmarks/data/ and reused."""
    kind = "large" if large else "photos"
    folder = HERE / "data" / (f"{kind}-{count}" + (f"-{source.name}" if source else ""))
    stamp = folder / ".made-with"
    spec = json.dumps({"count": count, "source": str(source)} | ({"large": True} if large else {}))
    if stamp.is_file() and stamp.read_text() == spec:
        print(f"using the images already built in {folder}")
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, str(HERE / "make_photos.py"), str(folder), "--count", str(count)]
    if source:
        cmd += ["--source", str(source)]
    if large:
        cmd += ["--large"]
    print("building images:", " ".join(cmd), flush=True)
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
    ap.add_argument(
        "--large-count",
        type=int,
        default=200,
        help="large photos (4000x3000, upscaled) to build for the large-photo read rows"
        " (default 200; 0: leave these rows out)",
    )
    ap.add_argument(
        "--extra-repeats",
        type=int,
        default=3,
        help="samples per read row added for the fast-input targets (pack-time resize, cache,"
        " crops, large photos; default 3, at most --repeats)",
    )
    ap.add_argument(
        "--only",
        choices=["all", "pack"],
        default="all",
        help="pack: only the pack rows (no TensorFlow reads, no CLI rows; a few minutes)",
    )
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
    src = args.images.resolve() if args.images else build_images(args.count, args.source)
    n, src_bytes = count_images(src)
    if n == 0:
        sys.exit(f"no images under {src}")
    large = None
    pack_only = args.only == "pack"
    if args.large_count > 0 and not pack_only:
        folder = build_images(args.large_count, args.source, large=True)
        large_n, large_bytes = count_images(folder)
        large = Data(folder, large_n, large_bytes / MB)
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imgrec-bench-", dir=args.work))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if not args.no_pyc_cache:
        # As after a normal install: compiled bytecode is cached (in a folder of our own,
        # so nothing is written next to the sources), whatever PYTHONDONTWRITEBYTECODE says.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(HERE / "data" / "pycache")
    info = machine()
    print(f"{n} images, {src_bytes / MB:.1f} MB in {src}; scratch {work}")
    if large:
        print(f"{large.images} large photos, {large.mb:.1f} MB in {large.folder}")
    print(
        f"{info['cpu_model']}, {info['cores']} cores; Python {info['python']}, "
        f"TensorFlow {info['versions']['tensorflow']}"
    )
    packed_s: Any = None
    psnr: dict[str, Any] | None = None
    reads: list[Case] = []
    try:
        if not pack_only:
            # Not measured: the datasets the read and inspect rows use, and a first import of
            # everything, so that every measured run finds its files in the page cache and
            # its bytecode compiled.
            print("packing the datasets the read rows read (not measured)", flush=True)
            small = Data(src, n, src_bytes / MB)
            packed_s = read_rows.prepare(imgrec_command(), small, large, work, args.size, env)
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import tensorflow as t, imgrec.reading.tfdata; t.keras.utils",
                ],
                check=True,
                env=env,
                stderr=subprocess.DEVNULL,
            )

            print("comparing resized images with Pillow's LANCZOS (not measured)", flush=True)
            psnr = read_rows.quality(small, large, work, args.size, env)
            reads = read_rows.build(small, large, work, args.repeats, args.extra_repeats, args.size)
        else:  # the same warm-up for the pack rows: files in the page cache, bytecode
            subprocess.run(
                [*imgrec_command(), "pack", str(src), str(work / "warm"), "-q"],
                check=True,
                env=env,
            )
            shutil.rmtree(work / "warm")

        retry_budget = args.retry_budget
        cases = build_cases(
            src,
            n,
            src_bytes / MB,
            work,
            args.workers,
            args.repeats,
            args.raw_shards,
            reads,
            cli=not pack_only,
        )
        for round_ in range(max(c.repeats for c in cases)):
            todo = [c for c in cases if round_ < c.repeats and not c.view_of]
            print(f"round {round_ + 1}: {len(todo)} measurements", flush=True)
            for c in todo:
                sample = take_sample(c, env, args.settle)
                # A run during which other processes were busy (or a read that stalled on
                # one core) is measured again, while the retry budget lasts; the quietest of
                # the tries is kept.
                while sample.disturbance > BUSY and retry_budget > 0:
                    c.discarded += 1
                    c.stalled += int(sample.stalled_cores > 0)
                    t = time.perf_counter()
                    again = take_sample(c, env, args.settle)
                    retry_budget -= time.perf_counter() - t
                    sample = min(sample, again, key=lambda s: s.disturbance)
                c.samples.append(sample)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    by_key = {c.key: c for c in cases}
    for c in cases:
        if c.view_of:  # a later pass of another row's process
            c.samples = by_key[c.view_of].samples
    ratios = comparisons(by_key, args.workers, psnr)
    goals = targets(by_key, args.workers, psnr, args.size)
    text = table(cases, ratios, read_rows.notes(psnr))
    print()
    print(text)
    print()
    for g in goals:
        print(f"[{'holds' if g['holds'] else 'FAILS'}] {g['target']}: {g['value']}{g['unit']}")
    retried = sum(c.discarded for c in cases)
    if retried:
        stalled = sum(1 for c in cases for s in c.samples if s.stalled_cores > 0)
        print(
            f"\n{retried} run(s) measured again because other processes were busy or the read"
            f" stalled on one core; {stalled} kept sample(s) stalled"
        )
    busy = [c.key for c in cases if not c.view_of and c.median("background_cores") > BUSY]
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
        "large_images": (
            {"folder": str(large.folder), "count": large.images, "mb": round(large.mb, 2)}
            if large
            else None
        ),
        "pack_seconds_before_measuring": packed_s,
        "psnr": psnr,
        "options": {
            "pyc_cache": not args.no_pyc_cache,
            "settle_s": args.settle,
            "retry_budget_s": args.retry_budget,
            "repeats": args.repeats,
            "workers": args.workers,
            "raw_shards": args.raw_shards,
            "size": args.size,
            "large_count": args.large_count,
            "extra_repeats": args.extra_repeats,
            "only": args.only,
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
                "stalled_retries": c.stalled,
                "kept_stalled_samples": sum(1 for s in c.samples if s.stalled_cores > 0),
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
