"""`imgrec pack --masks DIR`: semantic masks (PNGs of class indices, VOC palette PNGs)
stored under DeepLab's keys at the stored image's size, moved with the pixels (every
resize mode, EXIF orientation, read-time resize, crops and flips) by nearest neighbour, so
that a mask always marks its image's rectangles with their class and never blends two."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from annotated import draw, mask_matches, write_coco, write_masks
from fixtures import run
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.format import schema
from imgrec.format.framing import read_records

pytestmark = pytest.mark.slow

MODES = {
    "as-stored": {},
    "raw": {"format": "raw"},
    "fill": {"resize": (64, 96), "resize_mode": "fill"},
    "pad": {"resize": (64, 96), "resize_mode": "pad"},
    "max-side": {"max_side": 60},
}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("masked")
    images = draw(root / "images", count=10, negatives=1)
    return root, images, write_masks(images, root / "SegmentationClass")


def check(out, slack, **read) -> int:
    n = 0
    for ex in imgrec.dataset(out, dtype="uint8", with_filenames=True, **read):
        mask = ex["segmentation_mask"].numpy()
        assert mask.dtype == np.uint8 and mask.shape[-1] == 1
        why = mask_matches(ex["image"].numpy(), mask[..., 0], slack)
        assert why is None, (ex["filename"].numpy(), why)
        n += 1
    return n


@pytest.mark.parametrize("mode", MODES)
def test_each_mask_marks_its_rectangles_in_every_resize_mode(drawn, tmp_path, mode):
    root, images, masks = drawn
    m = pack(root / "images", tmp_path / "out", PackOptions(masks=str(masks), **MODES[mode]))
    assert m.records == len(images) and not m.skipped
    slack = 0 if mode in ("as-stored", "raw") else 2
    assert check(tmp_path / "out", slack) == len(images)
    # plain TensorFlow, as DeepLab reads it: the stored PNG of indices, the image's size
    import tensorflow as tf

    for shard in (tmp_path / "out").glob("*.tfrecord"):
        for _, data in read_records(shard):
            rec = schema.parse(data)
            assert rec.mask is not None
            mask = tf.io.decode_png(rec.mask, channels=1).numpy()
            assert mask.shape[:2] == (rec.height, rec.width)
    if mode == "pad":  # the border is "ignore", not class 0
        ex = next(iter(imgrec.dataset(tmp_path / "out")))
        assert (ex["segmentation_mask"].numpy() == 255).any()


@pytest.mark.parametrize("crop", ["random", "center"])
def test_read_time_resize_crops_and_flips_move_the_mask(drawn, tmp_path, crop):
    root, images, masks = drawn
    ann = write_coco(images, tmp_path / "i.json")
    pack(root / "images", tmp_path / "out", PackOptions(masks=str(masks), annotations=str(ann)))
    assert check(tmp_path / "out", 2, resize=(48, 48)) == len(images)
    for seed in (1, 2):
        assert check(tmp_path / "out", 2, resize=(48, 48), crop=crop, seed=seed) == len(images)
    batch = next(iter(imgrec.dataset(tmp_path / "out", batch_size=4, resize=(48, 48))))
    assert batch["segmentation_mask"].shape == (4, 48, 48, 1)


def test_a_missing_wrong_sized_or_colour_mask_skips_its_image(drawn, tmp_path):
    root, images, masks = drawn
    bad = tmp_path / "masks"
    bad.mkdir()
    for p in masks.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    gone, small, colour = images[0], images[1], images[2]
    (bad / (gone.rel.rsplit(".", 1)[0] + ".png")).unlink()
    Image.new("L", (5, 5)).save(bad / (small.rel.rsplit(".", 1)[0] + ".png"))
    Image.new("RGB", (colour.width, colour.height)).save(
        bad / (colour.rel.rsplit(".", 1)[0] + ".png")
    )
    m = pack(root / "images", tmp_path / "out", PackOptions(masks=str(bad)))
    reasons = {s.path: s.reason for s in m.skipped}
    assert set(reasons) == {gone.rel, small.rel, colour.rel}
    assert "no mask for this image" in reasons[gone.rel]
    assert f"the mask is 5x5, but the image is {small.width}x{small.height}" in reasons[small.rel]
    assert "the mask is a RGB image" in reasons[colour.rel]
    assert all(r.startswith("bad-annotation: ") for r in reasons.values())


def test_inspect_counts_mask_classes_and_decode_writes_the_mask(drawn, tmp_path):
    root, images, masks = drawn
    pack(root / "images", tmp_path / "out", PackOptions(masks=str(masks)))
    summary = json.loads(run("inspect", tmp_path / "out", "--json").output)
    per_class = summary["masks"]["images_by_class"]
    assert per_class["0"] == len(images)  # every image has background
    for cls in range(3):
        holding = sum(any(c == cls for *_, c in d.boxes) for d in images)
        assert per_class.get(str(1 + cls), 0) == holding
    assert "masks:" in run("inspect", tmp_path / "out").output
    assert run("verify", tmp_path / "out", "--decode").exit_code == 0
    r = run("decode", tmp_path / "out", "-o", tmp_path / "dec", "--to", "png")
    assert r.exit_code == 0, r.output
    written = sorted((tmp_path / "dec").glob("*.mask.png"))
    assert len(written) == len(images)
    for path in written:
        image = np.asarray(Image.open(path.with_name(path.name[: -len(".mask.png")])))
        mask = np.asarray(Image.open(io.BytesIO(path.read_bytes())))
        assert mask_matches(image[..., :3], mask, 0) is None


def test_verify_names_a_mask_that_is_not_the_images_size(tmp_path):
    from dataclasses import replace

    from samples import jpeg, jpeg_record

    from imgrec.format.framing import ShardWriter

    rec = jpeg_record("a.jpg", jpeg(1))  # 128x96
    small = io.BytesIO()
    Image.new("L", (12, 10)).save(small, "PNG")
    with ShardWriter(tmp_path / "x.tfrecord") as w:
        w.write(schema.serialize(replace(rec, mask=small.getvalue())))
    r = run("verify", tmp_path / "x.tfrecord")
    assert r.exit_code == 1
    assert "image/segmentation/class/encoded is a 12x10 L image; the image is 128x96" in (
        r.output + r.stderr
    )


def test_tfds_loads_the_mask_png(drawn, tmp_path):
    import tensorflow_datasets as tfds

    root, images, masks = drawn
    pack(root / "images", tmp_path / "out", PackOptions(masks=str(masks)))
    assert run("tfds", tmp_path / "out").exit_code == 0
    ds = tfds.builder_from_directory(str(tmp_path / "out")).as_dataset(split="train")
    for ex in tfds.as_numpy(ds):
        mask = np.asarray(Image.open(io.BytesIO(ex[schema.MASK])))
        assert mask.shape == ex["image/encoded"].shape[:2]
