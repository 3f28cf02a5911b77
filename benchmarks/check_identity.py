"""Byte-identity of ``imgrec pack`` between two source trees of imgrec (a reference commit and
the working tree): shards, index files, manifest (its ``imgrec`` version line left out),
stdout, stderr and exit code, for 1 and 2 workers and many option sets.

    git worktree add /tmp/base8bfe 8bfe34a
    python benchmarks/check_identity.py /tmp/base8bfe . --work /tmp/ident [--photos DIR]

``imgrec convert`` is compared the same way (CONVERTS) on tests/foreign.py's datasets: MXNet
RecordIO with and without its .idx and .lst, Caffe LMDB (encoded and raw datums), inception
TFRecords (one file, and a glob of two). Beam cases (``--runner beam``) run once each, on
Beam's DirectRunner, without --workers.

Each tree runs as ``python -m imgrec`` with ``PYTHONPATH=TREE``. The source folder holds
tests/fixtures.py's tree, tests/corpus.py's odd and damaged images, odd file names, and
(with --photos) a few hundred of make_photos.py's photos, enough for several raw shards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES: list[list[str]] = [
    [],
    ["--shards", "1"],
    ["--shards", "3", "--seed", "7"],
    ["--no-shuffle", "--shards", "2"],
    ["--format", "raw"],
    ["--format", "raw", "--shards", "1"],
    ["--format", "raw", "--shards", "2"],
    ["--format", "raw", "--shards", "3"],
    ["--format", "raw", "--shards", "7", "--seed", "3"],
    ["--format", "raw", "--channels", "3", "--max-side", "24"],
    ["--format", "raw", "--split", "train=0.7,val=0.3", "--shards", "3"],
    ["--format", "raw", "--shards", "1", "--resize", "16x12", "--resize-mode", "pad"],
    ["--format", "raw", "--shards", "1", "--resize", "16x12", "--resize-mode", "stretch"],
    ["--format", "raw", "--shards", "1", "--resize", "16x12", "--resize-mode", "fit"],
    ["--format", "raw", "--shards", "1", "--resize", "16x12", "--resize-mode", "fill"],
    ["--runner", "beam", "--shards", "2"],
    ["--runner", "beam", "--format", "raw", "--shards", "2"],
    ["--format", "png", "--resize", "16x12"],
    ["--format", "png", "--shards", "1"],
    ["--format", "jpeg", "--quality", "90"],
    ["--format", "jpeg", "--shards", "1", "--channels", "1"],
    ["--split", "train=0.7,val=0.3", "--shards", "4"],
    ["--split", "train=0.5,val=0.3,test=0.2", "--split-mode", "exact"],
    ["--max-side", "20", "--channels", "4"],
    ["--max-pixels", "5000", "--format", "raw", "--shards", "2"],
    ["--on-error", "fail"],
    ["--on-error", "fail", "--format", "raw", "--shards", "1"],
    ["--json"],
    ["--format", "raw", "--json", "--shards", "2"],
]

# imgrec convert: (SRC under the foreign folder, options)
CONVERTS: list[tuple[str, list[str]]] = [
    ("mx.rec", ["--lst", "{foreign}/mx.lst"]),
    ("mx.rec", ["--format", "raw", "--shards", "2"]),
    ("noidx.rec", []),
    ("lmdb-encoded", ["--shards", "3"]),
    ("lmdb-raw", ["--format", "png"]),
    ("inception/train-00000-of-00002", []),
    ("inception/train-*", ["--split", "train=0.7,val=0.3", "--shards", "2"]),
]


def make_source(root: Path, photos: Path | None, count: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from corpus import damaged, make_corpus
    from fixtures import make_tree

    make_tree(root, per_class=5)
    make_corpus(root / "corpus")
    damaged(root / "damaged")
    odd = root / "odd names"
    odd.mkdir()
    for name in ["é ü.png", "a b.jpg", "x" * 120 + ".png", "-dash.jpg"]:
        shutil.copy(next((root / "corpus").rglob("*.png")), odd / name)
    (odd / "zero.png").write_bytes(b"")
    (odd / "notes.txt").write_text("not an image")
    if photos is not None:
        taken = sorted(p for p in photos.rglob("*") if p.is_file() and not p.name.startswith("."))
        for p in taken[:: max(1, len(taken) // count)][:count]:
            dest = root / "photos" / p.relative_to(photos).parent.name / p.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)


def make_foreign(root: Path) -> None:
    """Other tools' datasets, as tests/foreign.py writes them."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import foreign

    records = foreign.images(12)
    root.mkdir(parents=True)
    labelled = [(b, [float(c)], n) for b, c, n in records]
    foreign.write_rec(root / "mx.rec", labelled)
    foreign.write_rec(root / "noidx.rec", labelled, idx=False)
    foreign.write_lmdb(root / "lmdb-encoded", records, raw=False)
    foreign.write_lmdb(root / "lmdb-raw", records, raw=True)
    (root / "inception").mkdir()
    foreign.write_inception(root / "inception" / "train-00000-of-00002", records[:7])
    foreign.write_inception(root / "inception" / "train-00001-of-00002", records[7:])


def run(
    tree: Path, src: Path | str, out: Path, args: list[str], command: str = "pack"
) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "imgrec", command, str(src), str(out), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def contents(out: Path) -> dict[str, bytes]:
    if not out.exists():
        return {}
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "manifest.json":
                data = re.sub(rb'\n *"imgrec": "[^"]*",', b"", data)
            files[str(p.relative_to(out))] = data
    return files


def normalise(text: str, out: Path) -> str:
    # the run time and the speed in the summary line vary from run to run
    text = re.sub(r"in [0-9.]+ s \([0-9]+ images/s\)", "in T", text)
    text = re.sub(r'"(seconds|images_per_s|elapsed_s)": [0-9.e-]+', r'"\1": T', text)
    return text.replace(str(out), "OUT")


def compare(
    args: argparse.Namespace,
    command: str,
    src: Path | str,
    case: list[str],
    workers: tuple[str, ...],
    label: str,
) -> int:
    """Run ``command`` on the base tree once (one worker) and on the new tree with each of
    ``workers`` (none for Beam: ``("1",)`` then means one run without --workers); print one
    line per run; the number of runs that differ."""
    beam = "--runner" in case
    ref = args.work / "ref"
    shutil.rmtree(ref, ignore_errors=True)
    local = [] if beam else ["--workers", "1"]
    expected = run(args.base.resolve(), src, ref, ["-q", *case, *local], command)
    want = (expected[0], normalise(expected[1], ref), normalise(expected[2], ref))
    want_files = contents(ref)
    failed = 0
    for n in workers:
        out = args.work / f"new-w{n}"
        shutil.rmtree(out, ignore_errors=True)
        more = [] if beam else ["--workers", n]
        got = run(args.new.resolve(), src, out, ["-q", *case, *more], command)
        got = (got[0], normalise(got[1], out), normalise(got[2], out))
        files = contents(out)
        same = got == want and files == want_files
        failed += not same
        runs = "" if beam else f" --workers {n}"
        print(f"{'same' if same else 'DIFFERENT'}: {label}{runs}"
              f" (exit {got[0]}, {len(files)} files)", flush=True)  # fmt: skip
        if not same:
            if got != want:
                print("  output:", want, "\n  got:   ", got)
            for name in sorted(set(files) | set(want_files)):
                if files.get(name) != want_files.get(name):
                    print("  differs:", name)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="the reference imgrec source tree")
    ap.add_argument("new", type=Path, help="the imgrec source tree to check")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--photos", type=Path, help="make_photos.py's photos to add some of")
    ap.add_argument("--count", type=int, default=300, help="photos to take (default 300)")
    ap.add_argument("--only", help="run the cases whose arguments contain this text")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    src = args.work / "src"
    make_source(src, args.photos, args.count)
    foreign = args.work / "foreign"
    make_foreign(foreign)
    failed = 0
    for case in CASES:
        if args.only and args.only not in " ".join(case):
            continue
        beam = "--runner" in case  # Beam runs take no --workers: one run each
        label = " ".join(case) or "(defaults)"
        failed += compare(args, "pack", src, case, ("1",) if beam else ("1", "2"), label)
    for name, options in CONVERTS:
        case = [o.replace("{foreign}", str(foreign)) for o in options]
        label = f"convert {name} {' '.join(options)}".rstrip()
        if args.only and args.only not in label:
            continue
        failed += compare(args, "convert", f"{foreign}/{name}", case, ("1", "2"), label)
    print("all the same" if not failed else f"{failed} different")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
