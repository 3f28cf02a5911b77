"""The COCO reader at COCO's size: time to index a file and the peak memory of doing so, and
the time of one image's lookup.

    python benchmarks/coco_scale.py --work /tmp/coco-scale          # a tenth, then full size
    python benchmarks/coco_scale.py --work /tmp/coco-scale --sizes 0.1
    python benchmarks/coco_scale.py --work /tmp/coco-scale --keypoints 17  # as person_keypoints

Each size is a synthetic file as COCO's tools write it (120,000 images and 860,000
annotations at full size, about 410 MB, each annotation with one polygon of 20 points;
``images``, then ``annotations``, then ``categories``, as in COCO's own files), made once in
``--work`` and reused. Each is indexed in a fresh process, which reports its peak RSS
(``ru_maxrss``) before and after ``read``, the wall and CPU time of ``read``, and the mean
time of ``lookup`` over 20,000 images in random order. With ``--keypoints K``, every category
names K keypoints and every annotation has K [x, y, v] inside its box (which the index then
holds too).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

IMAGES, ANNOTATIONS = 120_000, 860_000
CATEGORIES = [c for c in range(1, 91) if c not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
LOOKUPS = 20_000


def coco_box(rng: random.Random) -> tuple[float, float, float, float]:
    """A box ``[x, y, w, h]`` inside a 640 x 480 image."""
    x, y = round(rng.uniform(0, 500), 2), round(rng.uniform(0, 400), 2)
    w, h = round(rng.uniform(1, 139), 2), round(rng.uniform(1, 79), 2)
    return x, y, w, h


def make(
    path: Path,
    images: int,
    annotations: int,
    seed: int = 0,
    *,
    size: tuple[int, int] = (640, 480),
    name: str = "{:012d}.jpg",
    box: Callable[[random.Random], tuple[float, float, float, float]] = coco_box,
    keypoints: int = 0,
) -> None:
    """Write a COCO file of ``images`` images (``name`` formatted with 0, 1, ..., each of
    ``size`` width x height) and ``annotations`` annotations on images drawn at random, each
    with ``box(rng)`` as its bbox and a polygon of 20 points inside it (and ``keypoints``
    keypoints, which every category then names)."""
    rng = random.Random(seed)
    width, height = size
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic"}, "licenses": [], "images": [')
        for i in range(images):
            image = {"license": 1, "file_name": name.format(i), "height": height,
                     "width": width, "date_captured": "2013-11-14 17:02:52",
                     "id": i + 1}  # fmt: skip
            f.write((", " if i else "") + json.dumps(image))
        f.write('], "annotations": [')
        for a in range(annotations):
            x, y, w, h = box(rng)
            points = [(x + rng.uniform(0, w), y + rng.uniform(0, h)) for _ in range(20)]
            polygon = [round(v, 2) for point in points for v in point]
            annotation = {"segmentation": [polygon], "area": round(w * h * 0.6, 4),
                          "iscrowd": 0, "image_id": rng.randrange(images) + 1,
                          "bbox": [x, y, w, h], "category_id": rng.choice(CATEGORIES),
                          "id": a + 1}  # fmt: skip
            if keypoints:
                annotation["keypoints"] = [
                    v for _ in range(keypoints) for v in
                    (int(x + rng.uniform(0, w)), int(y + rng.uniform(0, h)), rng.choice((0, 1, 2)))
                ]  # fmt: skip
            f.write((", " if a else "") + json.dumps(annotation))
        categories = [{"supercategory": "s", "id": c, "name": f"class {c}"} for c in CATEGORIES]
        if keypoints:
            for c in categories:
                c["keypoints"] = [f"point {k}" for k in range(keypoints)]
        f.write('], "categories": ' + json.dumps(categories) + "}")


def measure(path: Path, work: Path) -> dict[str, float]:
    """In this process: index ``path``, then look images up."""
    from imgrec.packing.annotations import coco

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    source = coco.read(path, work)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    names = [f"{i:012d}.jpg" for i in range(len(list(source.listed())))]
    random.Random(1).shuffle(names)
    names = names[:LOOKUPS]
    boxes = 0
    start = time.perf_counter()
    for name in names:
        found = source.lookup(name)
        boxes += len(found.boxes) if found else 0
    lookup = (time.perf_counter() - start) / len(names)
    source.close()
    return {"size MB": path.stat().st_size / 1e6, "index s": wall, "index CPU s": cpu,
            "RSS before MiB": before, "peak RSS MiB": peak, "lookup us": lookup * 1e6,
            "boxes per image": boxes / len(names)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default="0.1,1", help="fractions of COCO's size")
    parser.add_argument("--keypoints", type=int, default=0, help="keypoints per annotation")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.work)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for fraction in (float(s) for s in args.sizes.split(",")):
        images, annotations = round(IMAGES * fraction), round(ANNOTATIONS * fraction)
        kp = f"-kp{args.keypoints}" if args.keypoints else ""
        path = args.work / f"coco-{images}-{annotations}{kp}.json"
        if not path.exists():
            make(path.with_suffix(".part"), images, annotations, keypoints=args.keypoints)
            path.with_suffix(".part").rename(path)
        out = subprocess.run(
            [sys.executable, __file__, "--work", str(args.work), "--measure", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        figures = json.loads(out)
        shown = ", ".join(f"{k} {v:,.2f}" for k, v in figures.items())
        print(f"{images:,} images, {annotations:,} annotations: {shown}")


if __name__ == "__main__":
    main()
