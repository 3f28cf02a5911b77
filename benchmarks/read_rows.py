"""The read rows of the benchmark: the datasets they read, their commands, their ratios to
the baselines, the image-quality comparison and the read targets. Used by run.py.

Every read row runs ``read_pipelines.py`` in a fresh process (see that file); the datasets
are packed before anything is measured, not timed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HERE, MB, Case, expect_read, folder_bytes, ratio

# Targets the project has set itself (see benchmarks/README.md).
READ_VS_TFDATA_MIN = 1.0
READ_VS_KERAS_MIN = 1.3
VS_BARE_MIN = 0.9  # imgrec.dataset over the encoded shards / the bare decode + resize
RAW_AT_SIZE_VS_KERAS_MIN = 4.0  # raw shards packed at the read size / keras
CACHE_EPOCH2_MIN = 3.0  # cache=True: second pass / first pass
CROP_VS_HANDWRITTEN_MIN = 1.3  # crop="random" / decode the whole image, then crop
LARGE_VS_KERAS_MIN = 2.0  # large photos: imgrec.dataset / keras
# Bounded memory: a cached read may hold at most twice the cache's size more than an
# uncached read (the cache, and as much again of allocator slack: measured over 10 epochs
# of 1000 images, the cached process levels off 154 MB above the uncached one for a
# 151 MB cache, and is 206 MB above after its second epoch, when run.py measures it).
CACHE_RSS_SLACK = 2.0

LARGE_MAX_SIDE = 512  # pack --max-side for the large photos' smaller packs
PSNR_SAMPLE = 20  # large photos compared with the reference resize


# Rows whose process also makes a second pass over its dataset, reported on its own row:
# the steady state, without building the pipeline and first-use costs (which weigh on a
# pass of 1,000 images: about 0.1 s of the 0.5 to 0.7 s).
SECOND_PASS = {"read_keras", "read_tfdata", "read_imgrec_encoded", "read_imgrec_raw_at"}

FULL_REPEATS = {
    "read_tfdata", "read_keras", "read_bare", "read_imgrec_encoded", "read_imgrec_raw"
}  # fmt: skip


@dataclass(frozen=True)
class Data:
    """One image folder and its count and bytes."""

    folder: Path
    images: int
    mb: float


def packs(size: int, large: bool) -> dict[str, list[str]]:
    """The datasets the read rows need: scratch name -> ``imgrec pack`` options; names
    starting with ``large`` are packs of the large photos."""
    at = f"{size}x{size}"
    found = {
        "ref-encoded": ["--format", "encoded"],
        "ref-raw": ["--format", "raw"],
        f"ref-jpeg{size}": ["--format", "jpeg", "--resize", at],
        f"ref-raw{size}": ["--format", "raw", "--resize", at],
    }
    if large:
        side = str(LARGE_MAX_SIDE)
        found["large-encoded"] = ["--format", "encoded"]
        found[f"large-jpeg{LARGE_MAX_SIDE}"] = ["--format", "jpeg", "--max-side", side]
    return found


def prepare(
    imgrec: list[str], small: Data, large: Data | None, work: Path, size: int, env: dict[str, str]
) -> dict[str, float]:
    """Pack every dataset the read rows read (not measured); returns seconds per pack."""
    spent = {}
    for name, options in packs(size, large is not None).items():
        src = large.folder if large is not None and name.startswith("large") else small.folder
        t = time.perf_counter()
        subprocess.run(
            [*imgrec, "pack", str(src), str(work / name), *options, "-q"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        spent[name] = round(time.perf_counter() - t, 1)
        print(f"  packed {name} ({' '.join(options)}) in {spent[name]} s", flush=True)
    return spent


def build(
    small: Data, large: Data | None, work: Path, repeats: int, extra_repeats: int, size: int
) -> list[Case]:
    """The read rows. The four original rows and the bare pipeline (the reference of the
    closest target) take ``repeats`` samples, the rows added with them ``extra_repeats``
    (each read row costs 3 to 4 s of TensorFlow start-up)."""
    py = sys.executable
    reads = str(HERE / "read_pipelines.py")
    size_args = ["--size", str(size), str(size)]

    def shards_mb(name: str) -> float:
        return folder_bytes(work / name, "*.tfrecord") / MB

    def row(key: str, name: str, args: list[str], data: Data, mb: float, **kw: Any) -> Case:
        n = data.images
        reps = repeats if key in FULL_REPEATS else min(repeats, extra_repeats)
        cmd = [py, reads, *args, "--batch", "32", *size_args]
        return Case(key, name, "read", cmd, reps, n, mb, check=expect_read(n, size), **kw)

    enc = str(work / "ref-encoded")
    jpeg_at, raw_at = f"ref-jpeg{size}", f"ref-raw{size}"
    at = f"{size}x{size}"
    cases = [
        row("read_tfdata", "hand-written tf.data (baseline)", ["tfdata", enc], small,
            shards_mb("ref-encoded")),
        row("read_keras", "image_dataset_from_directory (baseline)",
            ["keras", str(small.folder)], small, small.mb),
        row("read_bare", "bare decode + resize (baseline)", ["bare", enc], small,
            shards_mb("ref-encoded")),
        row("read_imgrec_encoded", "imgrec.dataset, encoded shards", ["imgrec", enc], small,
            shards_mb("ref-encoded")),
        row("read_imgrec_raw", "imgrec.dataset, raw shards", ["imgrec", str(work / "ref-raw")],
            small, shards_mb("ref-raw")),
        row("read_imgrec_jpeg_at", f"imgrec.dataset, packed --resize {at} --format jpeg",
            ["imgrec", str(work / jpeg_at)], small, shards_mb(jpeg_at)),
        row("read_imgrec_raw_at", f"imgrec.dataset, packed --resize {at} --format raw",
            ["imgrec", str(work / raw_at)], small, shards_mb(raw_at)),
        row("read_tfraw_at", f"hand-written raw reader, packed {at} (floor)",
            ["tfraw", str(work / raw_at)], small, shards_mb(raw_at)),
        row("read_cache_1", "imgrec.dataset, cache=True: epoch 1",
            ["imgrec", enc, "--cache", "--epochs", "2"], small, shards_mb("ref-encoded")),
        row("read_cache_2", "imgrec.dataset, cache=True: epoch 2 (same process)",
            ["imgrec", enc, "--cache", "--epochs", "2"], small, 0.0, epoch=1,
            view_of="read_cache_1"),
        row("read_tfcrop", "decode, then random crop (baseline)", ["tfcrop", enc], small,
            shards_mb("ref-encoded")),
        row("read_imgrec_crop", 'imgrec.dataset, crop="random"', ["imgrec", enc, "--crop",
            "random"], small, shards_mb("ref-encoded")),
    ]  # fmt: skip
    for case in list(cases):
        if case.key in SECOND_PASS:
            case.cmd += ["--epochs", "2"]
            cases.append(row(f"{case.key}_2", f"{case.name}: pass 2",
                             [], small, 0.0, epoch=1, view_of=case.key))  # fmt: skip
    if large is not None:
        side = LARGE_MAX_SIDE
        cases += [
            row("read_large_keras", "large photos: image_dataset_from_directory (baseline)",
                ["keras", str(large.folder)], large, large.mb),
            row("read_large_imgrec", "large photos: imgrec.dataset, encoded shards",
                ["imgrec", str(work / "large-encoded")], large, shards_mb("large-encoded")),
            row("read_large_jpeg", f"large photos: packed --max-side {side} --format jpeg",
                ["imgrec", str(work / f"large-jpeg{side}")], large,
                shards_mb(f"large-jpeg{side}")),
            row("read_large_tfcrop", "large photos: decode, then random crop (baseline)",
                ["tfcrop", str(work / "large-encoded")], large, shards_mb("large-encoded")),
            row("read_large_crop", 'large photos: imgrec.dataset, crop="random"',
                ["imgrec", str(work / "large-encoded"), "--crop", "random"], large,
                shards_mb("large-encoded")),
        ]  # fmt: skip
    return cases


def quality(
    small: Data, large: Data | None, work: Path, size: int, env: dict[str, str]
) -> dict[str, Any]:
    """PSNR against Pillow's LANCZOS resize of the whole source image, for a sample of the
    images: imgrec.dataset over the packs, and image_dataset_from_directory (not timed)."""
    side = LARGE_MAX_SIDE
    found = {}
    jobs = [("small", small, {"read_imgrec_encoded": "ref-encoded",
                              "read_imgrec_jpeg_at": f"ref-jpeg{size}",
                              "read_imgrec_raw_at": f"ref-raw{size}"})]  # fmt: skip
    if large is not None:
        jobs.append(("large", large, {"read_large_imgrec": "large-encoded",
                                      "read_large_jpeg": f"large-jpeg{side}"}))  # fmt: skip
    for name, data, packed in jobs:
        cmd = [sys.executable, str(HERE / "read_pipelines.py"), "psnr", str(data.folder),
               "--sample", str(PSNR_SAMPLE), "--size", str(size), str(size)]  # fmt: skip
        for key, folder in packed.items():
            cmd += ["--shards", f"{key}={work / folder}"]
        run = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        found[name] = json.loads(run.stdout.strip().splitlines()[-1])
    return found


def comparisons(
    cases: dict[str, Case], psnr: dict[str, Any] | None
) -> dict[str, list[tuple[str, float]]]:
    """For each read row, its throughput ratio to the relevant baselines."""

    def vs(key: str, *others: tuple[str, str]) -> None:
        if key in cases:
            out[key] = [(label, ratio(cases[key], cases[o])) for label, o in others]

    out: dict[str, list[tuple[str, float]]] = {}
    tfdata, keras, bare = ("tf.data", "read_tfdata"), ("keras", "read_keras"), ("bare", "read_bare")
    vs("read_tfdata", keras)
    vs("read_bare", tfdata, keras)
    vs("read_imgrec_encoded", bare, tfdata, keras)
    vs("read_imgrec_raw", tfdata, keras)
    vs("read_imgrec_jpeg_at", bare, keras)
    vs("read_imgrec_raw_at", keras, ("floor", "read_tfraw_at"))
    vs("read_tfraw_at", keras)
    vs("read_cache_1", ("no cache", "read_imgrec_encoded"))
    vs("read_cache_2", ("epoch 1", "read_cache_1"), keras)
    vs("read_imgrec_crop", ("decode-then-crop", "read_tfcrop"))
    for key in ("read_large_imgrec", "read_large_jpeg"):
        vs(key, ("keras", "read_large_keras"))
    vs("read_large_crop", ("decode-then-crop", "read_large_tfcrop"))
    keras_2 = ("keras", "read_keras_2")
    vs("read_tfdata_2", keras_2)
    vs("read_imgrec_encoded_2", ("tf.data", "read_tfdata_2"), keras_2)
    vs("read_imgrec_raw_at_2", keras_2)
    return out


def notes(psnr: dict[str, Any] | None) -> dict[str, str]:
    """Extra words for the comparison column: the PSNR of the rows compared with the
    reference resize."""
    found = {}
    for which, keras in (("small", "read_keras"), ("large", "read_large_keras")):
        for key, v in (psnr or {}).get(which, {}).get("pipelines", {}).items():
            db = v["mean_db"]
            text = f"PSNR {db:.1f} dB" if math.isfinite(db) else "same pixels as the reference"
            found[keras if key == "keras" else key] = text
    return found


def targets(
    cases: dict[str, Case],
    psnr: dict[str, Any] | None,
    size: int,
    add: Callable[[str, float, float, bool, str], None],
) -> None:
    keras = cases["read_keras"]
    for key in ("read_imgrec_encoded", "read_imgrec_raw"):
        c = cases[key]
        r = ratio(c, cases["read_tfdata"])
        add(f"{c.name} >= hand-written tf.data", r, READ_VS_TFDATA_MIN, r >= READ_VS_TFDATA_MIN,
            "x")  # fmt: skip
        r = ratio(c, keras)
        add(f"{c.name} >= {READ_VS_KERAS_MIN}x image_dataset_from_directory", r,
            READ_VS_KERAS_MIN, r >= READ_VS_KERAS_MIN, "x")  # fmt: skip
    enc = cases["read_imgrec_encoded"]
    r = ratio(enc, cases["read_bare"])
    add(f"{enc.name} >= {VS_BARE_MIN:.0%} of bare decode + resize", r, VS_BARE_MIN,
        r >= VS_BARE_MIN, "x")  # fmt: skip
    r = min(ratio(enc, cases["read_tfdata"]), ratio(enc, keras))
    add(f"{enc.name} faster than both tf.data and keras (the slower ratio)", r, 1.0, r > 1.0,
        "x")  # fmt: skip
    c = cases["read_imgrec_raw_at"]
    r = ratio(c, keras)
    add(f"{c.name} >= {RAW_AT_SIZE_VS_KERAS_MIN}x image_dataset_from_directory", r,
        RAW_AT_SIZE_VS_KERAS_MIN, r >= RAW_AT_SIZE_VS_KERAS_MIN, "x")  # fmt: skip
    r = ratio(cases["read_cache_2"], cases["read_cache_1"])
    add(f"cache=True: epoch 2 >= {CACHE_EPOCH2_MIN}x epoch 1", r, CACHE_EPOCH2_MIN,
        r >= CACHE_EPOCH2_MIN, "x")  # fmt: skip
    r = ratio(cases["read_imgrec_crop"], cases["read_tfcrop"])
    add(f'crop="random" >= {CROP_VS_HANDWRITTEN_MIN}x decode-then-crop', r,
        CROP_VS_HANDWRITTEN_MIN, r >= CROP_VS_HANDWRITTEN_MIN, "x")  # fmt: skip
    # Memory: a cached read holds the cache (uint8 at size x size x 3 per image) on top of
    # what an uncached read holds; bounded means not much more than that.
    cache_mb = enc.images * size * size * 3 / MB
    grown = cases["read_cache_1"].median("peak_rss_mb") - enc.median("peak_rss_mb")
    limit = CACHE_RSS_SLACK * cache_mb
    add(f"cache=True: peak RSS - uncached peak RSS <= {CACHE_RSS_SLACK}x the cache"
        f" ({cache_mb:.0f} MB)", grown, round(limit, 1), grown <= limit, " MB")  # fmt: skip
    if "read_large_imgrec" in cases:
        r = ratio(cases["read_large_imgrec"], cases["read_large_keras"])
        add(f"large photos: imgrec.dataset >= {LARGE_VS_KERAS_MIN}x image_dataset_from_directory",
            r, LARGE_VS_KERAS_MIN, r >= LARGE_VS_KERAS_MIN, "x")  # fmt: skip
    if psnr and "large" in psnr:
        p = psnr["large"]
        d = p["imgrec_db"] - p["keras_db"]
        add(f"large photos: imgrec closer to LANCZOS than keras (PSNR difference, mean of"
            f" {p['images']}; imgrec {p['imgrec_db']:.2f} dB, keras {p['keras_db']:.2f} dB)",
            d, 0.0, d > 0, " dB")  # fmt: skip
