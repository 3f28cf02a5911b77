"""A small COCO-format detection dataset for trying ``pack --annotations`` as a user would:
photos from ``make_photos.py`` with squares, circles and triangles drawn on them (0 to 3 a
photo), and ``instances.json`` giving each shape's box, polygon and class.

    python benchmarks/make_photos.py /tmp/photos --count 40 --classes 2
    python benchmarks/make_coco.py /tmp/photos /tmp/coco
    imgrec pack /tmp/coco/images /tmp/coco-out --annotations /tmp/coco/instances.json

The images go to ``OUT/images`` (flat, as COCO's ``train2017/``), JPEGs at quality 92.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

CATEGORIES = [
    {"id": 1, "name": "square"},
    {"id": 2, "name": "circle"},
    {"id": 3, "name": "triangle"},
]


def shape(draw: ImageDraw.ImageDraw, name: str, x: int, y: int, s: int, colour: Any) -> list[float]:
    """Draw the shape filling the square (x, y, s) and give its polygon, flat."""
    if name == "square":
        points = [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]
    elif name == "circle":
        r = s / 2
        points = [
            (x + r + r * math.cos(2 * math.pi * k / 24), y + r + r * math.sin(2 * math.pi * k / 24))
            for k in range(24)
        ]
    else:
        points = [(x, y + s), (x + s / 2, y), (x + s, y + s)]
    draw.polygon(points, fill=colour)
    return [float(v) for point in points for v in point]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="a folder of JPEGs (make_photos.py's)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=40, help="at most this many images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, path in enumerate(sorted(args.photos.rglob("*.jpg"))[: args.count], 1):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        w, h = image.size
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(0, 3)):
            category = rng.choice(CATEGORIES)
            s = rng.randint(max(8, min(w, h) // 8), max(9, min(w, h) // 3))
            x, y = rng.randint(0, w - s - 1), rng.randint(0, h - s - 1)
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            polygon = shape(draw, str(category["name"]), x, y, s, colour)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": category["id"],
                 "bbox": [x, y, s, s], "area": s * s, "iscrowd": 0, "segmentation": [polygon]}
            )  # fmt: skip
        name = f"{i:04d}.jpg"
        image.save(args.out / "images" / name, quality=92)
        images.append({"id": i, "file_name": name, "width": w, "height": h})
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (args.out / "instances.json").write_text(json.dumps(data))
    print(f"{len(images)} images, {len(annotations)} objects in {args.out}")


if __name__ == "__main__":
    main()
