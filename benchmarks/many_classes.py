"""Packing many classes: time per class of N and of 4N one-image class folders.

Linear work gives a ratio near 4 (t(4N) / t(N)); checking each class name against a list of
the names so far gives near 16. Each size is packed in a fresh subprocess (in-process
``imgrec.pack``, one worker), sizes alternating, several rounds; the median of the per-round
ratios is printed, plain and with a ``--labels`` file naming every class.

    python benchmarks/many_classes.py --classes 10000 --rounds 3
    python benchmarks/many_classes.py --tree /tmp/old-checkout   # another tree's imgrec
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ONE = """
import sys, time
from imgrec import PackOptions, pack
src, out, labels = sys.argv[1], sys.argv[2], sys.argv[3] or None
start = time.perf_counter()
pack(src, out, PackOptions(workers=1, labels_file=labels))
print(time.perf_counter() - start)
"""


def make_source(root: Path, classes: int) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, "PNG")
    png = buf.getvalue()
    for i in range(classes):
        folder = root / f"class{i:06d}"
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(png)
    (root.parent / f"{root.name}.labels").write_text(
        "".join(f"class{i:06d}\n" for i in range(classes))
    )
    return root


def packed_in(src: Path, out: Path, labels: bool, tree: Path | None) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
    label_file = str(src.parent / f"{src.name}.labels") if labels else ""
    run = [sys.executable, "-c", ONE, str(src), str(out), label_file]
    # cwd: python -c puts the working folder first on sys.path, before PYTHONPATH
    done = subprocess.run(
        run, capture_output=True, text=True, env=env, cwd=src.parent, timeout=3600
    )
    if done.returncode != 0:
        sys.exit(done.stderr.strip().splitlines()[-1])
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=10_000, help="N (the larger size is 4N)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", type=Path, help="a source tree whose imgrec is measured")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgrec-classes-") as tmp:
        root = Path(tmp)
        sizes = (args.classes, 4 * args.classes)
        sources = {n: make_source(root / f"src{n}", n) for n in sizes}
        for labels in (False, True):
            ratios, times = [], {n: [] for n in sizes}
            for r in range(args.rounds):
                t = {}
                for n in sizes:
                    out = root / f"out-{n}-{r}-{labels}"
                    t[n] = packed_in(sources[n], out, labels, args.tree)
                    times[n].append(t[n])
                ratios.append(t[sizes[1]] / t[sizes[0]])
            kind = "with --labels" if labels else "plain"
            med = {n: statistics.median(v) for n, v in times.items()}
            print(f"{kind:>13}: {sizes[0]:,} classes {med[sizes[0]]:.2f} s, "
                  f"{sizes[1]:,} classes {med[sizes[1]]:.2f} s, "
                  f"ratio {statistics.median(ratios):.1f} (linear 4, quadratic 16)")  # fmt: skip


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"in {time.perf_counter() - start:.0f} s")
