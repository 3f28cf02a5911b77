"""Images with known objects: a filled rectangle per object, drawn in the image as it is
displayed, saved with an EXIF orientation (the stored pixels are the displayed ones turned
back), and the annotation files other tools write for them (COCO JSON, Pascal VOC XML,
YOLO txt). A box read back must cover its rectangle's pixels, whatever moved them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(250, 20, 20), (20, 250, 20), (20, 20, 250)]  # one per class
NAMES = ["red", "green", "blue"]
ORIENTATIONS = [1, 3, 6, 8, 2, 5, 4, 7]


@dataclass(frozen=True)
class Drawn:
    rel: str
    width: int  # as displayed
    height: int
    boxes: tuple[tuple[int, int, int, int, int], ...]  # x0, y0, x1, y1 (pixels), class 0..2
    orientation: int


def _stored(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels that, with this EXIF orientation applied, display as ``displayed``."""
    from imgrec.images.pixels import orient

    for transposed in (False, True):
        a = displayed.transpose(1, 0, 2) if transposed else displayed
        for rows in (False, True):
            for cols in (False, True):
                b = a[::-1] if rows else a
                b = np.ascontiguousarray(b[:, ::-1] if cols else b)
                shown = orient(b, orientation)
                if shown.shape == displayed.shape and (shown == displayed).all():
                    return b
    raise AssertionError(orientation)


def draw(src: Path, count: int = 16, seed: int = 0, negatives: int = 2) -> list[Drawn]:
    """``count`` images under ``src`` (JPEG and PNG, every EXIF orientation), 1 to 3
    separate rectangles each, and ``negatives`` more with none."""
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True, exist_ok=True)
    drawn = []
    for i in range(count + negatives):
        h, w = int(rng.integers(80, 160)), int(rng.integers(80, 160))
        arr = np.full((h, w, 3), 128, np.uint8)
        boxes = []
        for k in range(0 if i >= count else int(rng.integers(1, 4))):
            # each in its own horizontal band, so rectangles never touch
            band = w // 3
            x0 = k * band + int(rng.integers(1, band // 3))
            x1 = x0 + int(rng.integers(8, band - band // 3))
            y0 = int(rng.integers(1, h // 2))
            y1 = int(rng.integers(y0 + 8, h - 1))
            cls = int(rng.integers(0, 3))
            arr[y0:y1, x0:x1] = COLOURS[cls]
            boxes.append((x0, y0, x1, y1, cls))
        orientation = ORIENTATIONS[i % len(ORIENTATIONS)]
        im = Image.fromarray(_stored(arr, orientation))
        exif = Image.Exif()
        exif[0x0112] = orientation
        rel = f"img{i:03d}." + ("jpg" if i % 2 == 0 else "png")
        if rel.endswith(".jpg"):
            im.save(src / rel, "JPEG", quality=98, subsampling=0, exif=exif.tobytes())
        else:
            im.save(src / rel, "PNG", exif=exif.tobytes())
        drawn.append(Drawn(rel, w, h, tuple(boxes), orientation))
    return drawn


def write_coco(drawn: list[Drawn], path: Path, first_id: int = 1) -> Path:
    """COCO instances JSON: category ids first_id.. (sparse ones are the test's business)."""
    images, annotations = [], []
    for n, d in enumerate(drawn, 1):
        images.append({"id": n, "file_name": d.rel, "width": d.width, "height": d.height})
        for x0, y0, x1, y1, cls in d.boxes:
            annotations.append({
                "id": len(annotations) + 1, "image_id": n, "category_id": first_id + cls,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
                "iscrowd": 0,
            })  # fmt: skip
    categories = [{"id": first_id + i, "name": name} for i, name in enumerate(NAMES)]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    return path


def with_shapes_and_centres(coco: Path) -> Path:
    """``coco`` (``write_coco``'s) given a polygon segmentation per object (its rectangle)
    and one keypoint, ``centre``, at each rectangle's centre."""
    data = json.loads(coco.read_text())
    for category in data["categories"]:
        category["keypoints"] = ["centre"]
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        a["keypoints"], a["num_keypoints"] = [x + w // 2, y + h // 2, 2], 1
    coco.write_text(json.dumps(data))
    return coco


def same_example(got: object, want: object, key: str = "") -> None:
    """``got`` (a ``RecordSource`` example) is ``want`` (``imgrec.dataset``'s, as NumPy),
    key by key, dtypes too; strings are str in ``got``, bytes in ``want``."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), key
        for k in want:
            same_example(got[k], want[k], f"{key}/{k}")
    elif isinstance(want, bytes):
        assert got == want.decode(), key
    else:
        assert np.asarray(got).dtype == np.asarray(want).dtype, key
        assert np.array_equal(np.asarray(got), np.asarray(want)), key


def write_voc(drawn: list[Drawn], folder: Path) -> Path:
    """One Pascal VOC XML per image: 1-based inclusive corners."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in drawn:
        objects = "".join(
            f"<object><name>{NAMES[cls]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
            "</bndbox></object>"
            for x0, y0, x1, y1, cls in d.boxes
        )
        (folder / (Path(d.rel).stem + ".xml")).write_text(
            f"<annotation><filename>{d.rel}</filename><size><width>{d.width}</width>"
            f"<height>{d.height}</height><depth>3</depth></size>{objects}</annotation>"
        )
    return folder


def write_yolo(drawn: list[Drawn], folder: Path) -> Path:
    """One YOLO txt per annotated image (none for negatives), and classes.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(NAMES) + "\n")
    for d in drawn:
        if not d.boxes:
            continue
        lines = [
            f"{cls} {(x0 + x1) / 2 / d.width:.6f} {(y0 + y1) / 2 / d.height:.6f}"
            f" {(x1 - x0) / d.width:.6f} {(y1 - y0) / d.height:.6f}"
            for x0, y0, x1, y1, cls in d.boxes
        ]
        (folder / (Path(d.rel).stem + ".txt")).write_text("\n".join(lines) + "\n")
    return folder


def rectangles(image: np.ndarray) -> dict[int, list[tuple[int, int, int, int]]]:
    """Per class, the pixel bounds (x0, y0, x1, y1) of each run of its colour, found by
    columns (the rectangles never share a column band)."""
    found: dict[int, list[tuple[int, int, int, int]]] = {}
    for cls, colour in enumerate(COLOURS):
        near = np.abs(image[..., :3].astype(int) - colour).sum(axis=-1) < 120
        cols = np.nonzero(near.any(axis=0))[0]
        if not len(cols):
            continue
        runs = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)
        for run in runs:
            rows = np.nonzero(near[:, run].any(axis=1))[0]
            found.setdefault(cls, []).append((run[0], rows[0], run[-1] + 1, rows[-1] + 1))
    return found


def lines_up(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, slack: float) -> str | None:
    """Why the boxes (rel_yxyx) and classes (index into NAMES, or the ids minus an offset)
    do not match the rectangles drawn in ``image``; None when every one does."""
    h, w = image.shape[:2]
    seen = rectangles(image)
    want = sorted((c, r) for c, rs in seen.items() for r in rs)
    got = sorted(
        (int(c), (x0 * w, y0 * h, x1 * w, y1 * h))
        for (y0, x0, y1, x1), c in zip(boxes, classes, strict=True)
        if c >= 0
    )
    if len(want) != len(got):
        return f"{len(got)} boxes for {len(want)} rectangles: {got} vs {want}"
    for (cw, rect), (cg, box) in zip(want, got, strict=True):
        if cw != cg or max(abs(a - b) for a, b in zip(rect, box, strict=True)) > slack:
            return f"box {box} (class {cg}) vs rectangle {rect} (class {cw})"
    return None


def write_masks(drawn: list[Drawn], folder: Path, border: bool = True) -> Path:
    """A palette PNG of class indices per image, as VOC's SegmentationClass: 0 for the
    background, 1 + the class inside each rectangle, and (``border``) a 255 "ignore" line
    along each rectangle's top edge, inside it."""
    folder.mkdir(parents=True, exist_ok=True)
    palette = [0, 0, 0] + [c for colour in COLOURS for c in colour] + [0] * 3 * 251
    palette[255 * 3 : 256 * 3] = [224, 224, 192]
    for d in drawn:
        mask = np.zeros((d.height, d.width), np.uint8)
        for x0, y0, x1, y1, cls in d.boxes:
            mask[y0:y1, x0:x1] = 1 + cls
            if border:
                mask[y0, x0:x1] = 255
        im = Image.fromarray(mask, "P")
        im.putpalette(palette)
        im.save(folder / (Path(d.rel).stem + ".png"))
    return folder


def mask_matches(image: np.ndarray, mask: np.ndarray, slack: int) -> str | None:
    """Why ``mask`` ((H, W) class indices) does not mark each drawn rectangle of ``image``
    with its class; None when it does, but for ``slack`` pixels at the edges."""
    h, w = image.shape[:2]
    if mask.shape != (h, w):
        return f"mask {mask.shape} for an image {(h, w)}"
    if set(np.unique(mask)) - {0, 1, 2, 3, 255}:
        return f"blended classes: {sorted(set(np.unique(mask)))}"
    for cls, rects in rectangles(image).items():
        for x0, y0, x1, y1 in rects:
            if x1 - x0 <= 2 * slack or y1 - y0 <= 2 * slack + 1:
                continue  # a sliver left by a crop: all edge
            inner = mask[y0 + slack + 1 : y1 - slack, x0 + slack : x1 - slack]
            if not (inner == 1 + cls).all():
                return f"rectangle {(x0, y0, x1, y1)} of class {cls}: mask holds {np.unique(inner)}"
    drawn = np.zeros((h, w), bool)
    for rects in rectangles(image).values():
        for x0, y0, x1, y1 in rects:
            drawn[max(0, y0 - slack) : y1 + slack, max(0, x0 - slack) : x1 + slack] = True
    outside = mask[~drawn]
    if outside.size and ((outside != 0) & (outside != 255)).any():
        return f"classes outside every rectangle: {np.unique(outside)}"
    return None
