"""COCO segmentations packed as instance masks (``image/object/mask``: a PNG per object, at
the stored image's size, parallel to the other object lists), drawn in the displayed frame
from polygons and both run-length forms, moved with the pixels (EXIF orientation, every
resize mode, read-time resize, crops and flips) by nearest neighbour, so that each mask
always covers its object's rectangle and nothing else."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from annotated import Drawn, draw, rectangles
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.format import schema
from imgrec.format.framing import read_records

pytestmark = pytest.mark.slow

MODES = {
    "as-stored": {},
    "stretch": {"resize": (70, 90), "resize_mode": "stretch"},
    "fit": {"resize": (70, 90), "resize_mode": "fit"},
    "fill": {"resize": (64, 96), "resize_mode": "fill"},
    "pad": {"resize": (64, 96), "resize_mode": "pad"},
    "max-side": {"max_side": 60},
}
FORMS = ("polygon", "counts", "string")  # the annotations take them in turn


def _counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed run lengths: 0s first, down the columns."""
    flat = mask.T.ravel()
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat[0] else runs


def segmentation(form: str, box: tuple[int, int, int, int], height: int, width: int) -> Any:
    x0, y0, x1, y1 = box
    if form == "polygon":
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    if form == "counts":
        return {"size": [height, width], "counts": _counts(mask)}
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask))
    return {"size": [height, width], "counts": rle["counts"].decode()}


def write_segmented(drawn: list[Drawn], path: Path, skip: set[int] = frozenset()) -> Path:
    """COCO instances JSON with a segmentation per rectangle (polygons and both RLE forms
    in turn; none for the annotation ids in ``skip``)."""
    images, annotations = [], []
    for n, d in enumerate(drawn, 1):
        images.append({"id": n, "file_name": d.rel, "width": d.width, "height": d.height})
        for x0, y0, x1, y1, cls in d.boxes:
            ident = len(annotations) + 1
            annotation = {
                "id": ident, "image_id": n, "category_id": 1 + cls, "iscrowd": ident % 4 == 0,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
            }  # fmt: skip
            annotation["iscrowd"] = int(annotation["iscrowd"])
            if ident not in skip:
                form = FORMS[ident % len(FORMS)]
                annotation["segmentation"] = segmentation(form, (x0, y0, x1, y1), d.height, d.width)
            annotations.append(annotation)
    categories = [{"id": 1 + i, "name": name} for i, name in enumerate(["r", "g", "b"])]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    return path


def masks_match(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray, slack: int) -> str | None:
    """Why the instance masks ((N, H, W) 0/1) do not each cover exactly the rectangle drawn
    in ``image`` under their box (rel_yxyx), but for ``slack`` pixels about its edges."""
    h, w = image.shape[:2]
    if masks.shape != (len(boxes), h, w):
        return f"masks {masks.shape} for {len(boxes)} boxes of an image {(h, w)}"
    if set(np.unique(masks)) - {0, 1}:
        return f"blended values: {sorted(set(np.unique(masks)))}"
    rects = [r for rs in rectangles(image).values() for r in rs]
    for (y0, x0, y1, x1), mask in zip(boxes, masks, strict=True):
        box = (x0 * w, y0 * h, x1 * w, y1 * h)
        near = [r for r in rects if max(abs(a - b) for a, b in zip(r, box, strict=True)) <= 3]
        if not near:  # a sliver a crop left (under the colour threshold): inside its box only
            rx0, ry0, rx1, ry1 = (round(v) for v in box)
        else:
            rx0, ry0, rx1, ry1 = near[0]
        want = np.zeros((h, w), bool)
        want[ry0:ry1, rx0:rx1] = True
        edge = np.zeros((h, w), bool)
        edge[max(0, ry0 - slack) : ry1 + slack, max(0, rx0 - slack) : rx1 + slack] = True
        inner_y = slice(ry0 + slack, max(ry0 + slack, ry1 - slack))
        edge[inner_y, rx0 + slack : max(rx0 + slack, rx1 - slack)] = False
        if not near:
            want[:] = mask.astype(bool) & edge | want
        wrong = (mask.astype(bool) != want) & ~edge
        if wrong.any():
            ys, xs = np.nonzero(wrong)
            return (
                f"the mask of box {box} differs from rectangle {(rx0, ry0, rx1, ry1)} at"
                f" {len(ys)} pixels (first at x {xs[0]}, y {ys[0]})"
            )
    return None


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmented")
    images = draw(root / "images", count=10, negatives=1)
    return root, images, write_segmented(images, root / "instances.json")


def check(out: Path, slack: int, **read: Any) -> int:
    n = 0
    for ex in imgrec.dataset(out, dtype="uint8", with_filenames=True, **read):
        masks = ex["object_masks"].numpy()
        assert masks.dtype == np.uint8
        boxes = ex["bounding_boxes"]["boxes"].numpy()
        why = masks_match(ex["image"].numpy(), boxes, masks, slack)
        assert why is None, (ex["filename"].numpy(), why)
        n += 1
    return n


def check_plain_tf(out: Path, slack: int) -> int:
    """As the Model Garden's decoder reads them: each PNG decoded, the image's size."""
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        schema.OBJECT_MASK: tf.io.VarLenFeature(tf.string),
        **{k: tf.io.VarLenFeature(tf.float32) for k in (schema.XMIN, schema.YMIN,
                                                         schema.XMAX, schema.YMAX)},
    }  # fmt: skip
    objects = 0
    for shard in sorted(out.glob("*.tfrecord")):
        for _, data in read_records(shard):
            f = tf.io.parse_single_example(data, spec)
            image = tf.io.decode_image(f["image/encoded"], channels=3).numpy()
            pngs = tf.sparse.to_dense(f[schema.OBJECT_MASK]).numpy()
            masks = [tf.io.decode_png(p, channels=1).numpy()[..., 0] for p in pngs]
            stacked = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), np.uint8)
            keys = (schema.YMIN, schema.XMIN, schema.YMAX, schema.XMAX)
            corners = [tf.sparse.to_dense(f[k]).numpy() for k in keys]
            why = masks_match(image, np.stack(corners, axis=-1), stacked, slack)
            assert why is None, why
            objects += len(masks)
    return objects


@pytest.mark.parametrize("mode", MODES)
def test_each_instance_mask_covers_its_rectangle_in_every_resize_mode(drawn, tmp_path, mode):
    root, images, ann = drawn
    out = tmp_path / "out"
    m = pack(root / "images", out, PackOptions(annotations=str(ann), **MODES[mode]))
    assert m.records == len(images) and not m.skipped
    assert m.annotations is not None and m.annotations.instance_masks
    assert not any("segmentation" in w for w in m.annotations.warnings)
    # polygons: Pillow fills the pixels their outline passes through (a pixel more than
    # COCO's rasteriser at the right and bottom edges); resizes blend the image's edges
    slack = 1 if mode == "as-stored" else 2
    assert check(out, slack) == len(images)
    objects = check_plain_tf(out, slack)
    kept = sum(len(d.boxes) for d in images)
    assert objects <= kept and (objects == kept or mode == "fill")
    for shard in out.glob("*.tfrecord"):
        for _, data in read_records(shard):
            rec = schema.parse(data)
            assert rec.objects is not None and rec.objects.masks is not None
            assert len(rec.objects.masks) == len(rec.objects.xmin)


def test_run_length_masks_are_exact_and_polygons_within_a_pixel(drawn, tmp_path):
    root, images, _ = drawn
    for form, slack in (("counts", 0), ("string", 0), ("polygon", 1)):
        ann = tmp_path / f"{form}.json"
        write_segmented(images, ann)
        data = json.loads(ann.read_text())
        for a in data["annotations"]:
            d = images[a["image_id"] - 1]
            x, y, bw, bh = a["bbox"]
            a["segmentation"] = segmentation(form, (x, y, x + bw, y + bh), d.height, d.width)
        ann.write_text(json.dumps(data))
        out = tmp_path / form
        pack(root / "images", out, PackOptions(annotations=str(ann)))
        assert check(out, slack) == len(images)
        if form == "polygon":  # not exact: the rectangle's right and bottom edges are in
            with pytest.raises(AssertionError):
                check(out, 0)


@pytest.mark.parametrize("crop", ["random", "center"])
def test_read_time_resize_crops_and_flips_move_the_masks(drawn, tmp_path, crop):
    root, images, ann = drawn
    out = tmp_path / "out"
    pack(root / "images", out, PackOptions(annotations=str(ann)))
    assert check(out, 2, resize=(48, 48)) == len(images)
    for seed in (1, 2, 3):
        assert check(out, 2, resize=(48, 48), crop=crop, seed=seed) == len(images)
    batch = next(iter(imgrec.dataset(out, batch_size=4, resize=(48, 48))))
    labels = batch["bounding_boxes"]["labels"].numpy()
    masks = batch["object_masks"].numpy()
    assert masks.shape == (4, labels.shape[1], 48, 48)
    assert not masks[labels < 0].any()  # padded objects: all-zero masks


def test_an_object_without_a_segmentation_gets_its_box_and_a_dataset_without_none(drawn, tmp_path):
    root, images, _ = drawn
    ann = write_segmented(images, tmp_path / "some.json", skip={1, 2})
    m = pack(root / "images", tmp_path / "some", PackOptions(annotations=str(ann)))
    assert m.annotations is not None
    assert m.annotations.warnings == [
        f"2 of {sum(len(d.boxes) for d in images)} annotations have no segmentation: their"
        " instance masks are their boxes, filled"
    ]
    assert check(tmp_path / "some", 1) == len(images)
    plain = write_segmented(images, tmp_path / "none.json", skip=set(range(1, 100)))
    m = pack(root / "images", tmp_path / "none", PackOptions(annotations=str(plain)))
    assert m.annotations is not None and not m.annotations.instance_masks
    for shard in (tmp_path / "none").glob("*.tfrecord"):
        for _, data in read_records(shard):
            assert schema.OBJECT_MASK.encode() not in data
    assert "object_masks" not in next(iter(imgrec.dataset(tmp_path / "none")))


def test_a_run_length_mask_not_the_images_size_skips_it_naming_the_annotation(drawn, tmp_path):
    root, images, ann = drawn
    data = json.loads(ann.read_text())
    turned = next(d for d in images if d.orientation in (6, 8) and d.boxes)
    n = images.index(turned) + 1
    for image in data["images"]:
        if image["id"] == n:  # the file states no size: only the image shows the mistake
            del image["width"], image["height"]
    first = next(a for a in data["annotations"] if a["image_id"] == n)
    # the mask of the stored pixels, before the EXIF orientation turns them
    first["segmentation"] = segmentation("string", (0, 0, 2, 2), turned.width, turned.height)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(bad)))
    assert [s.path for s in m.skipped] == [turned.rel]
    assert m.skipped[0].reason == (
        f"bad-annotation: {bad}: annotation id {first['id']}: its run-length mask's size"
        f" [height, width] is [{turned.width}, {turned.height}], but the image is"
        f" [{turned.height}, {turned.width}] as displayed; give the mask at the displayed"
        " image's size"
    )


def test_schema_checks_one_mask_per_object():
    from samples import jpeg, jpeg_record

    rec = jpeg_record("a.jpg", jpeg(1))
    png = io.BytesIO()
    Image.new("L", (rec.width, rec.height)).save(png, "PNG")
    objects = schema.Objects(xmin=(0.1,), ymin=(0.1,), xmax=(0.2,), ymax=(0.3,), label=(1,),
                             masks=(png.getvalue(),))  # fmt: skip
    from dataclasses import replace

    back = schema.parse(schema.serialize(replace(rec, objects=objects)))
    assert back.objects is not None and back.objects.masks == (png.getvalue(),)
    with pytest.raises(schema.SchemaError, match="image/object/mask has 2 masks for 1 objects"):
        schema.parse(schema.serialize(replace(rec, objects=replace(objects, masks=(b"", b"")))))


def test_verify_names_an_instance_mask_not_the_images_size(tmp_path):
    from dataclasses import replace

    from fixtures import run
    from samples import jpeg, jpeg_record

    from imgrec.format.framing import ShardWriter

    rec = jpeg_record("a.jpg", jpeg(1))  # 128x96
    pngs = []
    for size, mode in (((128, 96), "L"), ((12, 10), "L"), ((128, 96), "RGB")):
        out = io.BytesIO()
        Image.new(mode, size).save(out, "PNG")
        pngs.append(out.getvalue())
    box = {"xmin": (0.1,), "ymin": (0.1,), "xmax": (0.2,), "ymax": (0.3,), "label": (1,)}
    with ShardWriter(tmp_path / "x.tfrecord") as w:
        for png in pngs:
            objects = schema.Objects(**box, masks=(png,))  # type: ignore[arg-type]
            w.write(schema.serialize(replace(rec, objects=objects)))
    r = run("verify", tmp_path / "x.tfrecord")
    assert r.exit_code == 1
    said = r.output + r.stderr
    assert "image/object/mask 0 is a 12x10 L PNG; the image is 128x96" in said
    assert "image/object/mask 0 is a 128x96 RGB PNG; the image is 128x96" in said
    assert said.count("image/object/mask") == 2


def test_verify_decode_preview_and_tfds_show_the_masks(drawn, tmp_path):
    from fixtures import run

    root, images, ann = drawn
    out = tmp_path / "out"
    pack(root / "images", out, PackOptions(annotations=str(ann)))
    assert run("verify", out, "--decode").exit_code == 0
    r = run("decode", out, "-o", tmp_path / "dec", "--to", "png")
    assert r.exit_code == 0, r.output
    written = sorted((tmp_path / "dec").glob("*.objects.png"))
    assert len(written) == len(images)
    for path in written:
        image = np.asarray(Image.open(path.with_name(path.name[: -len(".objects.png")])))
        numbers = np.asarray(Image.open(path))
        side = json.loads(path.with_name(path.name.replace(".objects.png", ".json")).read_text())
        boxes = np.array(side["bounding_boxes"]["boxes"]).reshape(-1, 4)
        masks = np.array([numbers == k for k in range(1, len(boxes) + 1)], np.uint8)
        assert masks_match(image[..., :3], boxes, masks.reshape(-1, *numbers.shape), 1) is None
    sheet = tmp_path / "sheet.png"
    r = run("inspect", out, "--preview", sheet, "--json")
    assert r.exit_code == 0, r.output
    pixels = np.asarray(Image.open(sheet).convert("RGB")).astype(int)
    # a rectangle painted at half strength in its class colour over its own
    from annotated import COLOURS

    from imgrec.reading.preview import PALETTE

    halves = {tuple((np.array(c) + p) // 2) for c in COLOURS for p in PALETTE[1:4]}
    assert any((np.abs(pixels - h).sum(axis=-1) < 12).sum() > 50 for h in halves)
    import tensorflow_datasets as tfds

    assert run("tfds", out).exit_code == 0
    features = json.loads((out / "features.json").read_text())
    assert schema.OBJECT_MASK in json.dumps(features)
    ds = tfds.builder_from_directory(str(out)).as_dataset(split="train")
    for ex in tfds.as_numpy(ds):
        pngs = ex[schema.OBJECT_MASK]
        assert len(pngs) == len(ex[schema.XMIN])
        for png in pngs:
            assert np.asarray(Image.open(io.BytesIO(png))).shape == ex["image/encoded"].shape[:2]
