"""``imgrec pack --color srgb`` against the default (``--color keep``): the pack rate of
1,000 photos of which 15 % carry a Display P3 ICC profile, and the bytes stored per image.

    python benchmarks/color_pack.py                       # 1,000 photos made in --work
    python benchmarks/color_pack.py --photos DIR --rounds 5 --work /tmp/cbench --keep

The photos (``make_photos.py --count 1000 --classes 10`` unless ``--photos``) are copied to
``WORK/src``, and 15 % of them (JPEGs drawn with a seeded sample; 150 of 1,000) are tagged
Display P3 without being re-encoded: tests/icc_profiles.py's ``DISPLAY_P3`` inserted right
after SOI as APP2 ``ICC_PROFILE`` segments (split if over 65,519 bytes). Every tagged copy
is read back with Pillow: it carries the profile and decodes to the original's pixels.

Each pack is ``imgrec pack WORK/src OUT --workers 2 --json -q`` (and ``--color srgb``) in a
fresh process into an emptied OUT, timed as a whole (wall clock, harness.take_sample). The
two run back to back in each round, the first alternating between rounds; each ratio is
taken within a round, and the medians over rounds are printed. Every pack is checked: all
images packed, none skipped; with ``srgb`` exactly the tagged files transcoded with
"converted from Display P3"; with ``keep`` none converted and ``stats.profiles`` counting
the tagged files as Display P3. Converted JPEGs are stored as PNG, hence the bytes per image
(``stats.stored_bytes / stats.records``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from harness import (
    HERE,
    IMAGE_SUFFIXES,
    Case,
    Sample,
    expect_pack,
    fresh,
    imgrec_command,
    take_sample,
)
from PIL import Image

TAGGED = 0.15  # the share of the images given a Display P3 profile
CHUNK = 65535 - 2 - 14  # an APP2 segment's room for the profile: length, name, seq, count
CONVERTED = "converted from Display P3"
PIPELINES = ("keep", "srgb")


def display_p3() -> bytes:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import icc_profiles

    return bytes(icc_profiles.DISPLAY_P3)


def with_profile(jpeg: bytes, profile: bytes) -> bytes:
    """``jpeg`` with ``profile`` in APP2 ``ICC_PROFILE`` segments right after SOI."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI)")
    chunks = [profile[i : i + CHUNK] for i in range(0, len(profile), CHUNK)]
    segments = b"".join(
        b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(chunk)) + b"ICC_PROFILE\0"
        + bytes([seq, len(chunks)]) + chunk
        for seq, chunk in enumerate(chunks, 1)
    )  # fmt: skip
    return jpeg[:2] + segments + jpeg[2:]


def images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def make_source(photos: Path, src: Path, profile: bytes) -> tuple[int, set[str]]:
    """Copy ``photos`` to ``src``, TAGGED of the images tagged with ``profile``; the number
    of images and the tagged ones' paths (relative to ``src``)."""
    shutil.rmtree(src, ignore_errors=True)
    found = images_in(photos)
    jpegs = [p for p in found if p.suffix.lower() in (".jpg", ".jpeg")]
    chosen = set(random.Random(0).sample(jpegs, min(len(jpegs), round(TAGGED * len(found)))))
    for p in found:
        dest = src / p.relative_to(photos)
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = p.read_bytes()
        dest.write_bytes(with_profile(data, profile) if p in chosen else data)
    for p in sorted(chosen):  # read back: the profile is there, the pixels are the same
        with Image.open(src / p.relative_to(photos)) as tagged, Image.open(p) as original:
            if tagged.info.get("icc_profile") != profile:
                sys.exit(f"{p}: the tagged copy does not carry the profile")
            if original.info.get("icc_profile"):
                sys.exit(f"{p}: already carries an ICC profile")
            if not np.array_equal(np.asarray(tagged), np.asarray(original)):
                sys.exit(f"{p}: the tagged copy decodes to other pixels")
    return len(found), {p.relative_to(photos).as_posix() for p in chosen}


def check_colour(name: str, out: Path, n: int, tagged: set[str]) -> Callable[[Sample], None]:
    """Checks one pack's output (see the docstring); returns a check for take_sample."""
    counted = expect_pack(n)

    def check(sample: Sample) -> None:
        counted(sample)
        manifest = json.loads((out / "manifest.json").read_text())
        converted = {t["path"] for t in manifest["transcoded"] if CONVERTED in t["reason"]}
        profiles = manifest["stats"].get("profiles", {})
        if name == "srgb" and converted != tagged:
            raise RuntimeError(
                f"--color srgb converted {len(converted)} images from Display P3,"
                f" expected the {len(tagged)} tagged ({len(converted ^ tagged)} differ)"
            )
        if name == "keep" and (converted or profiles.get("Display P3") != len(tagged)):
            raise RuntimeError(
                f"--color keep converted {len(converted)} images and counted"
                f" {profiles.get('Display P3')} Display P3 profiles, expected 0 and {len(tagged)}"
            )
        stats = manifest["stats"]
        sample.extra["bytes_per_image"] = stats["stored_bytes"] / stats["records"]

    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="a folder of class folders (default: made)")
    parser.add_argument("--count", type=int, default=1000, help="photos to make (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of packs (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="passed to imgrec pack")
    parser.add_argument("--settle", type=float, default=3.0, help="wait up to S s for quiet")
    parser.add_argument("--work", type=Path, help="where the data goes (default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep --work afterwards")
    args = parser.parse_args()
    made = args.work is None or not args.work.exists()  # else only our folders are removed
    work = args.work or Path(tempfile.mkdtemp(prefix="imgrec-color-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args)
    finally:
        if not args.keep:
            ours = [work] if made else [work / "src", *(work / f"out-{n}" for n in PIPELINES)]
            ours += [] if made or args.photos else [work / f"photos-{args.count}"]
            for folder in ours:
                shutil.rmtree(folder, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    photos = args.photos or work / f"photos-{args.count}"
    if not args.photos and not photos.exists():
        part = work / f"photos-{args.count}.part"
        shutil.rmtree(part, ignore_errors=True)
        make = [sys.executable, str(HERE / "make_photos.py"), str(part)]
        make += ["--count", str(args.count), "--classes", "10"]
        subprocess.run(make, check=True, capture_output=True)
        part.rename(photos)
    src = work / "src"
    n, tagged = make_source(photos, src, display_p3())
    print(f"{n} images from {photos}, {len(tagged)} of them tagged Display P3 in {src}"
          " (each read back: the profile there, the same pixels)")  # fmt: skip

    # As run.py runs its children: bytecode cached in a folder of our own (see the README).
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(HERE / "data" / "pycache")
    cases: dict[str, Case] = {}
    for name in PIPELINES:
        out = work / f"out-{name}"
        cmd = [*imgrec_command(), "pack", str(src), str(out), "--workers", str(args.workers)]
        cmd += ["--json", "-q"] + (["--color", "srgb"] if name == "srgb" else [])
        check = check_colour(name, out, n, tagged)
        cases[name] = Case(name, " ".join(cmd), "pack", cmd, args.rounds, n, 0.0, fresh(out), check)
    for name in PIPELINES:  # not timed: the files, modules and bytecode into the caches
        take_sample(cases[name], env, 0)

    rates: dict[str, list[float]] = {name: [] for name in PIPELINES}
    ratios: list[float] = []
    for r in range(args.rounds):
        order = PIPELINES if r % 2 == 0 else PIPELINES[::-1]
        got = {name: take_sample(cases[name], env, args.settle) for name in order}
        for name in PIPELINES:
            cases[name].samples.append(got[name])
            rates[name].append(n / got[name].wall_s)
        ratios.append(rates["srgb"][-1] / rates["keep"][-1])
        others = ", ".join(f"{got[name].background_cores:.2f}" for name in order)
        print(f"round {r + 1} ({order[0]} first): keep {rates['keep'][-1]:,.0f} images/s,"
              f" srgb {rates['srgb'][-1]:,.0f} images/s, srgb/keep {ratios[-1]:.2f}"
              f" (others' cores {others})", flush=True)  # fmt: skip

    medians = f"median of {args.rounds}"
    print(f"\n| pack | images/s ({medians}) | wall s ({medians}) | stored bytes per image |")
    print("| --- | ---: | ---: | ---: |")
    per_image = {}
    for name in PIPELINES:
        sizes = {s.extra["bytes_per_image"] for s in cases[name].samples}
        if len(sizes) > 1:
            raise RuntimeError(f"{name}: stored bytes differ between rounds: {sorted(sizes)}")
        per_image[name] = sizes.pop()
        label = "imgrec pack --color srgb" if name == "srgb" else "imgrec pack (--color keep)"
        print(f"| {label} | {statistics.median(rates[name]):,.0f} |"
              f" {cases[name].median('wall_s'):.3f} | {per_image[name]:,.0f} |")  # fmt: skip
    print(f"\nsrgb / keep: {statistics.median(ratios):.2f}x (median of per-round ratios;"
          f" {min(ratios):.2f} to {max(ratios):.2f})")  # fmt: skip
    print(f"stored bytes per image: srgb / keep {per_image['srgb'] / per_image['keep']:.3f}x"
          f" ({len(tagged)} of {n} converted and stored as PNG)")  # fmt: skip


if __name__ == "__main__":
    main()
