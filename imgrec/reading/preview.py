"""``imgrec inspect --preview``: a contact sheet of sample images with their labels.

Samples are drawn evenly across classes and decoded through ``reader.dataset``, the path
training uses, so what the sheet shows is what a model gets: 16-bit and alpha included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..core import storage
from ..core.storage import Location
from ..format.framing import frames
from ..format.manifest import read
from ..format.schema import SchemaError, parse
from ..format.stats import UNLABELLED
from .paths import resolve
from .tfdata import dataset

TILE = 128  # pixels per side of each picture
CAPTION = 16  # pixels of label text under it


def pick(files: list[Location], count: int) -> list[tuple[str, bytes]]:
    """Up to ``count`` serialized records, as evenly spread over the classes as they allow:
    round-robin over the classes, in label order, taking each class's first records."""
    known: list[str] = []
    for folder in {str(storage.parent_of(f)): storage.parent_of(f) for f in files}.values():
        m = read(folder)
        known += [n for n in (m.labels if m else []) if n not in known]
    per_class: dict[str, list[bytes]] = {}
    for f in files:
        for frame in frames(f):
            if frame.problem is not None or frame.data is None:
                continue
            try:
                rec = parse(frame.data, strict=False)
            except SchemaError:
                continue
            name = rec.text or (str(rec.label) if rec.label >= 0 else UNLABELLED)
            bucket = per_class.setdefault(name, [])
            if len(bucket) < count:
                bucket.append(frame.data)
        full = [n for n in known if len(per_class.get(n, [])) >= count]
        if known and len(full) == len(known):
            break
    order = [n for n in known if n in per_class] + sorted(n for n in per_class if n not in known)
    chosen: list[tuple[str, bytes]] = []
    depth = 0
    while len(chosen) < count and any(len(per_class[n]) > depth for n in order):
        for n in order:
            if depth < len(per_class[n]) and len(chosen) < count:
                chosen.append((n, per_class[n][depth]))
        depth += 1
    return chosen


def tile_of(image: np.ndarray, size: int = TILE) -> Image.Image:
    """A float HWC image in [0, 1] as an RGB tile: gray repeated, alpha over a checkerboard,
    scaled to fit ``size`` keeping its aspect (up or down), centred on dark gray."""
    return _tile(image, size)[0]


def _tile(image: np.ndarray, size: int = TILE) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``tile_of``, and where the image lies in the tile: (left, top, width, height)."""
    arr = np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0)
    c = arr.shape[2]
    rgb = np.repeat(arr[..., :1], 3, axis=2) if c in (1, 2) else arr[..., :3]
    if c in (2, 4):
        alpha = arr[..., -1:]
        y, x = np.mgrid[0 : arr.shape[0], 0 : arr.shape[1]]
        checker = np.where(((y // 8) + (x // 8)) % 2 == 0, 0.8, 0.6)[..., None]
        rgb = rgb * alpha + checker * (1 - alpha)
    im = Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")
    scale = size / max(im.width, im.height)
    fitted = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    # Small images are enlarged with nearest neighbour, so their pixels stay visible.
    im = im.resize(fitted, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (size, size), (40, 40, 40))
    left, top = (size - im.width) // 2, (size - im.height) // 2
    canvas.paste(im, (left, top))
    return canvas, (left, top, im.width, im.height)


# Outline colours of the boxes, by class id (bright on photos and on the dark background)
PALETTE = [(255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 220, 0), (255, 64, 255),
           (0, 255, 255), (255, 150, 40), (180, 120, 255)]  # fmt: skip


def overlay_mask(
    tile: Image.Image, where: tuple[int, int, int, int], mask: np.ndarray
) -> Image.Image:
    """``tile`` with each mask class painted over its image at half strength, in the class's
    colour (class 0, the background, and 255, ignore, left clear)."""
    left, top, w, h = where
    scaled = np.asarray(Image.fromarray(mask, "L").resize((w, h), Image.Resampling.NEAREST))
    colours = np.array([PALETTE[c % len(PALETTE)] for c in range(256)], np.uint8)
    painted = colours[scaled]
    keep = (scaled == 0) | (scaled == 255)
    region = np.asarray(tile.crop((left, top, left + w, top + h))).astype(np.uint16)
    mixed = np.where(keep[..., None], region, (region + painted) // 2).astype(np.uint8)
    out = tile.copy()
    out.paste(Image.fromarray(mixed, "RGB"), (left, top))
    return out


def overlay_objects(
    tile: Image.Image, where: tuple[int, int, int, int], masks: np.ndarray, labels: np.ndarray
) -> Image.Image:
    """``tile`` with each instance mask ((N, H, W), 1 inside) painted over its image at
    half strength, in its class's colour (the colour of its box's outline)."""
    left, top, w, h = where
    region = np.asarray(tile.crop((left, top, left + w, top + h))).astype(np.uint16)
    for mask, label in zip(masks, labels, strict=True):
        inside = np.asarray(
            Image.fromarray(mask, "L").resize((w, h), Image.Resampling.NEAREST)
        ).astype(bool)
        colour = np.array(PALETTE[int(label) % len(PALETTE)], np.uint16)
        region[inside] = (region[inside] + colour) // 2
    out = tile.copy()
    out.paste(Image.fromarray(region.astype(np.uint8), "RGB"), (left, top))
    return out


def draw_boxes(tile: Image.Image, where: tuple[int, int, int, int], example: dict[str, Any],
               names: dict[int, str]) -> int:  # fmt: skip
    """Outline each box of ``example`` (rel_yxyx, as ``dataset`` gives them) on ``tile``,
    with its class name; returns how many were drawn."""
    left, top, w, h = where
    boxes = example["bounding_boxes"]["boxes"].numpy()
    labels = example["bounding_boxes"]["labels"].numpy()
    draw = ImageDraw.Draw(tile)
    for (y0, x0, y1, x1), label in zip(boxes, labels, strict=True):
        colour = PALETTE[int(label) % len(PALETTE)]
        corners = (left + x0 * w, top + y0 * h, left + x1 * w - 1, top + y1 * h - 1)
        draw.rectangle(corners, outline=colour)
        draw.text((corners[0] + 2, corners[1] + 1), names.get(int(label), str(label))[:12],
                  fill=colour)  # fmt: skip
    return len(boxes)


def draw_points(
    tile: Image.Image, where: tuple[int, int, int, int], example: dict[str, Any]
) -> int:
    """Mark each labelled keypoint of ``example`` on ``tile`` with a small cross in its
    slot's colour (a ring around a point labelled but not visible); returns how many."""
    left, top, w, h = where
    points = example["keypoints"]["points"].numpy().reshape(-1, 2)
    seen = example["keypoints"]["visibility"].numpy()
    k = seen.shape[-1] if seen.ndim else 1
    draw = ImageDraw.Draw(tile)
    drawn = 0
    for i, ((y, x), v) in enumerate(zip(points, seen.reshape(-1), strict=True)):
        if v <= 0:
            continue
        colour = PALETTE[(i % k) % len(PALETTE)]
        cx, cy = left + x * w, top + y * h
        if v == 2:
            draw.line((cx - 3, cy, cx + 3, cy), fill=colour)
            draw.line((cx, cy - 3, cx, cy + 3), fill=colour)
        else:
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), outline=colour)
        drawn += 1
    return drawn


def contact_sheet(paths: list[str], out: Path, count: int = 36) -> dict[str, Any]:
    """Write the contact sheet PNG; returns what it shows. With no record to show, no file
    is written (``path`` None): an empty sheet would look like a failed decode."""
    files = resolve(paths)
    chosen = pick(files, count)
    if not chosen:
        return {"path": None, "images": 0, "columns": 0, "rows": 0, "labels": []}
    examples = list(
        dataset(files, labels=False, records=[data for _, data in chosen], device="cpu")
    )
    names = _class_names(files)
    cols = max(1, math.ceil(math.sqrt(len(examples))))
    rows = max(1, math.ceil(len(examples) / cols))
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + CAPTION)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    boxes = points = 0
    for i, ((label, _), example) in enumerate(zip(chosen, examples, strict=True)):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + CAPTION)
        annotated = isinstance(example, dict)  # a dataset packed with annotations
        tile, where = _tile((example["image"] if annotated else example).numpy())
        if annotated and "segmentation_mask" in example:
            tile = overlay_mask(tile, where, example["segmentation_mask"].numpy()[..., 0])
        if annotated and "object_masks" in example:
            labels = example["bounding_boxes"]["labels"].numpy()
            tile = overlay_objects(tile, where, example["object_masks"].numpy(), labels)
        if annotated:
            boxes += draw_boxes(tile, where, example, names or {})
        if annotated and "keypoints" in example:
            points += draw_points(tile, where, example)
        sheet.paste(tile, (x, y))
        draw.text((x + 3, y + TILE + 2), label[:20], fill=(230, 230, 230))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return {
        "path": str(out),
        "images": len(examples),
        "columns": cols,
        "rows": rows,
        "labels": [label for label, _ in chosen],
        **({"boxes": boxes} if names is not None else {}),
        **({"keypoints": points} if points else {}),
    }


def _class_names(files: list[Location]) -> dict[int, str] | None:
    """The object classes the manifests name (id -> name); None: no annotations."""
    names: dict[int, str] | None = None
    for folder in {str(storage.parent_of(f)): storage.parent_of(f) for f in files}.values():
        m = read(folder)
        if m is not None and m.annotations is not None:
            names = {**(names or {}), **m.annotations.classes}
    return names
