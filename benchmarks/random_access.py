"""imgrec.RecordSource against the alternatives a PyTorch user has: the fetch latency of one
random record, and the rate of a 2-worker DataLoader producing 224 x 224 float32 images,
next to the photo folder read the way torchvision's ImageFolder reads it, all in one run.

    python benchmarks/random_access.py                       # 1,000 photos made in --work
    python benchmarks/random_access.py --photos DIR --rounds 5 --work /tmp/ra --keep

Datasets: the photos (``make_photos.py --count 1000 --classes 10`` unless ``--photos``)
packed three ways: default (the JPEGs kept), ``--resize 224x224 --format jpeg``, and
``--format raw --resize 224x224``.

**Fetch latency**: ``RecordSource.read(i)`` (one positioned read, both CRCs checked, no
decode) of 5,000 random records after every record was read once (so from the page cache):
p50 and p99.

**Pipelines**, each in a fresh process: ``--epochs`` (4) epochs of
``DataLoader(batch_size=32, num_workers=2, shuffle=True, persistent_workers=True)``, the
first a warm-up (workers started, files in the page cache; its time from the start is shown
too), the rest timed: images/s in the steady state of a training run.

- ``folder``: the baseline. A map-style dataset over the photo folder doing what
  ``torchvision.datasets.ImageFolder`` does by default (``PIL.Image.open(path).convert("RGB")``;
  torchvision itself cannot be installed beside the torch these machines have), then
  ``resize((224, 224), BILINEAR)`` and float32 / 255;
- ``imgrec default``: ``RecordSource(dtype=None)`` of the default pack, then the same resize
  and scaling;
- ``imgrec default resize=``: ``RecordSource(resize=(224, 224))`` of the default pack: its
  own resize, imgrec.dataset's (a JPEG decoded at a reduced DCT scale where that still
  covers 224, then bilinear);
- ``imgrec jpeg 224`` and ``imgrec raw 224``: ``RecordSource`` of those packs (float32 as
  it gives them, no resize);
- ``tfrecord package``: the ``tfrecord`` package's iterable ``TFRecordDataset`` (one per
  shard, chained; it splits each shard between the workers through the index) over the
  default pack's shards, decoded with Pillow and resized as the folder is;
- ``grain``: a Grain ``MapDataset`` over ``RecordSource`` of the default pack with the same
  resize, ``mp_prefetch`` with 2 workers, batches of 32;
- ``floor``: a new float32 array of the same shape for each image (filled, so its memory
  is touched, as a decoded image's is), nothing read or decoded: the DataLoader's own cost
  (two workers, collation, float32 batches sent back), a bound for every float32 row;
- ``floor zeros``: the same with ``np.zeros``, whose untouched pages all map to the one
  zero page, a bound no real image reaches (shown because it flatters the DataLoader);
- ``imgrec raw 224 uint8``: the raw pack as stored (``dtype=None``), the float conversion
  left to the device, as a GPU pipeline does it.

The pipelines of a round run back to back; each ratio is taken within a round, and the table
shows the medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZE = 224
PIPELINES = (
    "folder",
    "floor",
    "floor zeros",
    "imgrec default",
    "imgrec default resize=",
    "imgrec jpeg 224",
    "imgrec raw 224",
    "imgrec raw 224 uint8",
    "tfrecord package",
    "grain",
)


def _resized(image: Any) -> Any:
    import numpy as np
    from PIL import Image

    im = (
        image
        if isinstance(image, Image.Image)
        else Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    )
    im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(im, np.float32) / np.float32(255)


class Folder:
    """What ImageFolder reads: every image under the class folders, with its class index."""

    def __init__(self, root: Path) -> None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [
            (p, classes.index(p.parent.name))
            for p in sorted(root.rglob("*"))
            if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.items[i]
        with open(path, "rb") as f:
            im = Image.open(f).convert("RGB")
        return _resized(im), label


class Pairs:
    """RecordSource examples as (image, label), the image resized as the folder's with
    ``resized``, else as the source gives it."""

    def __init__(self, source: Any, resized: bool = False) -> None:
        self.source, self.resized = source, resized

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        example = self.source[i]
        image = _resized(example["image"]) if self.resized else example["image"]
        return image, int(example["label"])


class Floor:
    """No reading, no decoding: a new float32 image per item, the DataLoader's own cost
    (workers, collation, sending float32 batches back), the bound of every float32 row;
    ``zeros``: of untouched memory."""

    def __init__(self, zeros: bool = False) -> None:
        self.zeros = zeros

    def __len__(self) -> int:
        return 1000

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import numpy as np

        if self.zeros:
            return np.zeros((SIZE, SIZE, 3), np.float32), 0
        return np.full((SIZE, SIZE, 3), i / 1000, np.float32), 0


def _from_tfrecord(example: dict[str, Any]) -> tuple[Any, int]:
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(bytes(example["image/encoded"])))
    return _resized(im), int(example["image/class/label"][0])


def run(name: str, data: dict[str, str], epochs: int) -> dict[str, float]:
    """One pipeline in this process: ``epochs`` epochs, the first a warm-up (workers started,
    files in the page cache), the rest timed; and the first's time from the start."""
    import imgrec

    # Every pipeline's process loads the same modules before its workers fork: glibc's
    # malloc moves its mmap threshold with a process's history, and whether a new 600 KB
    # array is fresh pages (faulted in) or reused heap moved the bare floor from 2,560-2,830
    # images/s to 1,500-2,100 after one more import (and back with a fixed threshold).
    assert imgrec.RecordSource is not None
    start = time.perf_counter()
    if name == "grain":
        import grain

        source = Pairs(imgrec.RecordSource(data["default"], dtype=None), resized=True)
        ds = grain.MapDataset.source(source).shuffle(seed=0).repeat(epochs).batch(32)
        stream = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
        count, first, timed = 0, 0.0, 0.0
        for _, labels in stream:
            count += len(labels)
            if not first and count >= len(source):  # the end of the first epoch
                first, timed = time.perf_counter() - start, time.perf_counter()
        timed = time.perf_counter() - timed
        return {"images": count - len(source), "seconds": timed, "first epoch s": first}
    import torch
    from torch.utils.data import ChainDataset, DataLoader

    if name == "folder":
        dataset: Any = Folder(Path(data["photos"]))
    elif name.startswith("floor"):
        dataset = Floor(zeros=name == "floor zeros")
    elif name == "imgrec default":
        dataset = Pairs(imgrec.RecordSource(data["default"], dtype=None), resized=True)
    elif name == "imgrec default resize=":
        dataset = Pairs(imgrec.RecordSource(data["default"], resize=(SIZE, SIZE)))
    elif name == "imgrec jpeg 224":
        dataset = Pairs(imgrec.RecordSource(data["jpeg"]))
    elif name == "imgrec raw 224":
        dataset = Pairs(imgrec.RecordSource(data["raw"]))
    elif name == "imgrec raw 224 uint8":  # floats made on the device, as one would on a GPU
        dataset = Pairs(imgrec.RecordSource(data["raw"], dtype=None))
    else:
        from tfrecord.torch.dataset import TFRecordDataset

        shards = sorted(Path(data["default"]).glob("*.tfrecord"))
        description = {"image/encoded": "byte", "image/class/label": "int"}
        dataset = ChainDataset(
            [TFRecordDataset(str(s), f"{s}.idx", description, transform=_from_tfrecord)
             for s in shards]
        )  # fmt: skip
    iterable = isinstance(dataset, torch.utils.data.IterableDataset)
    loader = DataLoader(
        dataset, batch_size=32, shuffle=not iterable, num_workers=2, persistent_workers=True
    )
    count, first, timed = 0, 0.0, 0.0
    for epoch in range(epochs):
        if epoch == 1:
            first, timed, count = time.perf_counter() - start, time.perf_counter(), 0
        for images, labels in loader:
            assert images.shape[1:] == (SIZE, SIZE, 3)
            assert images.dtype == (torch.uint8 if name.endswith("uint8") else torch.float32)
            count += len(labels)
    return {"images": count, "seconds": time.perf_counter() - timed, "first epoch s": first}


def latency(folder: str, count: int = 5000) -> dict[str, float]:
    import imgrec

    source = imgrec.RecordSource(folder)
    for i in range(len(source)):
        source.read(i)
    rng = random.Random(0)
    times = []
    for _ in range(count):
        i = rng.randrange(len(source))
        start = time.perf_counter_ns()
        source.read(i)
        times.append(time.perf_counter_ns() - start)
    times.sort()
    return {"p50 ms": times[len(times) // 2] / 1e6, "p99 ms": times[len(times) * 99 // 100] / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="a folder of class folders (default: made)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the data goes (default a temp dir)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--epochs", type=int, default=4, help="per pipeline, the first untimed")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # a child's pipeline
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.run, json.loads(args.data), args.epochs)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="imgrec-ra-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        photos = args.photos or work / "photos"
        if not args.photos and not photos.exists():
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "make_photos.py"),
                    str(photos),
                    "--count",
                    "1000",
                    "--classes",
                    "10",
                ],
                check=True,
                capture_output=True,
            )
        data = {"photos": str(photos)}
        for key, extra in {
            "default": [],
            "jpeg": ["--resize", "224x224", "--format", "jpeg"],
            "raw": ["--format", "raw", "--resize", "224x224"],
        }.items():
            out = work / key
            if not (out / "manifest.json").exists():
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "imgrec",
                        "pack",
                        str(photos),
                        str(out),
                        "-q",
                        "--overwrite",
                        *extra,
                    ],
                    check=True,
                )
            data[key] = str(out)
        for key in ("default", "raw"):
            found = latency(data[key])
            p50, p99 = found["p50 ms"], found["p99 ms"]
            print(f"fetch latency, {key} pack: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        rates: dict[str, list[float]] = {name: [] for name in PIPELINES}
        ratios: dict[str, list[float]] = {name: [] for name in PIPELINES}
        for r in range(1, args.rounds + 1):
            this: dict[str, float] = {}
            for name in PIPELINES:
                cmd = [sys.executable, __file__, "--run", name, "--data", json.dumps(data),
                       "--epochs", str(args.epochs)]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                this[name] = result["images"] / result["seconds"]
                rates[name].append(this[name])
                took = f"{result['images']} images in {result['seconds']:.2f} s"
                warm = f"first epoch {result['first epoch s']:.2f} s"
                print(f"round {r}: {name}: {took}, {this[name]:.0f} images/s ({warm})")
            for name in PIPELINES:
                ratios[name].append(this[name] / this["folder"])
        medians = f"median of {args.rounds}"
        print(f"\n| pipeline | images/s ({medians}) | x folder (median of per-round ratios) |")
        print("| --- | ---: | ---: |")
        for name in PIPELINES:
            rate, ratio = statistics.median(rates[name]), statistics.median(ratios[name])
            print(f"| {name} | {rate:.0f} | {ratio:.2f} |")
        print()
        for name in ("imgrec default", "imgrec default resize="):
            pairs = zip(rates[name], rates["tfrecord package"], strict=True)
            ratio = statistics.median(a / b for a, b in pairs)
            print(f"{name} / tfrecord package: {ratio:.2f}x (median of per-round ratios)")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
