"""Fuzz what pack keeps against TensorFlow's decoders, and print the counts.

Seeded damaged copies of real-looking JPEGs and PNGs (tests/fuzzing.py) are loaded as
``imgrec pack`` loads them (default options), and judged by Pillow and by TensorFlow as
``imgrec.dataset`` decodes. Printed: variants, kept, transcoded, skipped; the two ways to
be wrong (a stored file TensorFlow cannot decode; a skipped file both decode); and, per
rule of images/decoders.py, how many files it caught, how many of those TensorFlow indeed
refuses (the disagreements the rule fixes) and how many it would have decoded (where the
rule is stricter than needed: a lossless transcode instead of the file's own bytes).

    python benchmarks/fuzz_decoders.py --seeds 0-9 --originals 150 --per 16
    python benchmarks/fuzz_decoders.py --tree /tmp/base   # an older checkout's pack, judged

``--tree`` loads with another source tree's imgrec (before images/ existed, its
``images.load_data``), to count what that version kept that TensorFlow cannot decode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def loader(tree: Path | None) -> Any:
    """``(load(data), SkipImage, NotAnImage)`` of this tree's imgrec."""
    if tree is not None:
        sys.path.insert(0, str(tree.resolve()))
    try:
        from imgrec.images import loading

        return lambda d: loading.load_bytes(d, loading.ImageOptions()), (
            loading.SkipImage,
            loading.NotAnImage,
        )
    except ImportError:  # the flat layout of older versions
        from imgrec import images  # type: ignore[attr-defined]

        return lambda d: images.load_data(d, images.Options()), (
            images.SkipImage,
            images.NotAnImage,
        )


def rule_of(note: str | None) -> str | None:
    marker = "TensorFlow would refuse its bytes ("
    return note.split(marker, 1)[1][:-1] if note and marker in note else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-3", help="a range, e.g. 0-9")
    ap.add_argument("--originals", type=int, default=150)
    ap.add_argument("--per", type=int, default=16, help="damaged copies per original")
    ap.add_argument("--tree", type=Path, help="another checkout's imgrec to load with")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    load, refused = loader(args.tree)
    sys.path.insert(0, str(HERE.parent / "tests"))
    import tensorflow as tf
    from fuzzing import pillow_decodes, tensorflow_decodes, variants

    first, _, last = args.seeds.partition("-")
    counts: Counter[str] = Counter()
    rules: dict[str, Counter[str]] = {}
    wrong: list[str] = []
    started = time.perf_counter()
    for seed in range(int(first), int(last or first) + 1):
        for kind, op, data in variants(seed, args.originals, args.per):
            counts["variants"] += 1
            try:
                loaded = load(data)
            except refused as e:
                counts["skipped"] += 1
                if pillow_decodes(data) and tensorflow_decodes(tf, data, kind, None):
                    wrong.append(f"skipped, both decode: seed {seed} {kind} {op}: {e}")
                continue
            kept = loaded.data == data
            counts["kept" if kept else "transcoded"] += 1
            shape = (loaded.height, loaded.width, loaded.channels)
            if not tensorflow_decodes(tf, loaded.data, loaded.format, shape):
                wrong.append(f"stored, TensorFlow fails: seed {seed} {kind} {op}")
            rule = rule_of(loaded.note)
            if rule is not None:
                tally = rules.setdefault(f"{kind}: {rule}", Counter())
                tally["caught"] += 1
                tally["tensorflow decodes the original"] += tensorflow_decodes(
                    tf, data, kind, shape
                )
    result = {
        "counts": dict(counts),
        "wrong": len(wrong),
        "examples": wrong[:10],
        "rules": {k: dict(v) for k, v in sorted(rules.items())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(", ".join(f"{k} {v}" for k, v in counts.items()), f"in {result['seconds']} s")
    print(f"wrong: {len(wrong)}", *wrong[:10], sep="\n  ")
    for rule, tally in result["rules"].items():
        over = tally.get("tensorflow decodes the original", 0)
        print(f"  {tally['caught']:5d} caught, {tally['caught'] - over:5d} refused by TF: {rule}")


if __name__ == "__main__":
    main()
