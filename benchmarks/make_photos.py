"""Build a folder of photo-like images in class folders, for trying imgrec and benchmarking.

With ``--source DIR`` (a folder of real photographs), each photograph becomes a class and
its images are random crops of it, resized to about 400x300 and saved as JPEG (a tenth as
PNG), as a camera roll would be. Without it, photographs shipped inside the scikit-image
and scikit-learn wheels are used if those packages are installed; otherwise images are
drawn (smooth gradients and noise).

With ``--large``, the crops are instead *upscaled* to 4000x3000 (Pillow LANCZOS) and all
saved as JPEG of quality 90: camera-sized files (12 megapixels) for the large-photo read
benchmark. The source photographs are at most 640 pixels wide, so these images hold no more
detail than the small ones; they cost what a camera's photo costs to decode.

    python benchmarks/make_photos.py /tmp/photos --count 1000 --classes 10
    python benchmarks/make_photos.py /tmp/large --count 200 --large
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

PREFERRED = [
    "astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
    "motorcycle_left.png", "rocket.jpg", "retina.jpg", "china.jpg", "flower.jpg",
    "camera.png", "brick.png", "grass.png", "gravel.png", "coins.png",
]  # fmt: skip


def packaged_photos() -> list[Path]:
    found: dict[str, Path] = {}
    for package, sub in (("skimage", "data"), ("sklearn", "datasets/images")):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / sub
            for p in folder.glob("*"):
                found[p.name] = p
    return [found[n] for n in PREFERRED if n in found]


def drawn(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:600, 0:800]
    f = rng.uniform(5, 40, 3)
    arr = np.stack([128 + 100 * np.sin(x / f[0] + y / f[1]), 128 + 100 * np.cos(y / f[2]),
                    (x * y / 500) % 256], -1) + rng.normal(0, 8, (600, 800, 3))  # fmt: skip
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


LARGE = (4000, 3000)


def save_large(crop: Image.Image, path: Path) -> None:
    crop.resize(LARGE, Image.Resampling.LANCZOS).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--source", type=Path, help="folder of photographs to crop from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--large",
        action="store_true",
        help=f"upscale every crop to {LARGE[0]}x{LARGE[1]} (LANCZOS), JPEG quality 90",
    )
    args = ap.parse_args()
    pool = ProcessPoolExecutor(os.cpu_count()) if args.large else None
    jobs = []

    sources = sorted(args.source.iterdir()) if args.source else packaged_photos()
    rng = random.Random(args.seed)
    for c in range(args.classes):
        if c < len(sources):
            with Image.open(sources[c]) as im:
                photo, name = im.convert("RGB"), sources[c].stem
        else:
            photo, name = drawn(c), f"drawn{c}"
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        per_class = args.count // args.classes + (c < args.count % args.classes)
        for i in range(per_class):
            w, h = photo.size
            scale = rng.uniform(0.5, 1.0)
            cw, ch = int(w * scale), int(min(h, w * scale * 0.75))
            x0, y0 = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
            size = (400, 300) if rng.random() < 0.8 else (300, 400)
            if pool is not None:
                crop = photo.crop((x0, y0, x0 + cw, y0 + ch))
                jobs.append(pool.submit(save_large, crop, folder / f"{name}_{i:04d}.jpg"))
                continue
            crop = photo.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.BILINEAR)
            if i % 10 == 9:
                crop.save(folder / f"{name}_{i:04d}.png")
            else:
                crop.save(folder / f"{name}_{i:04d}.jpg", quality=rng.randrange(80, 96))
    if pool is not None:
        for job in jobs:
            job.result()
        pool.shutdown()
    print(f"wrote {args.count} images in {args.classes} classes to {args.out}")


if __name__ == "__main__":
    main()
