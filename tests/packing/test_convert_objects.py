"""imgrec convert of TF Object Detection API TFRecords (create_coco_tf_record.py's keys):
the objects are kept, their boxes where the rectangles are in the stored pixels (turned
upright with an EXIF-rotated image, and resized with it), classes from the records' ids and
texts, label_map.pbtxt and the manifest as pack --annotations writes them; records whose
objects cannot be used are skipped naming the file and the record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from annotated import NAMES, draw, lines_up
from fixtures import run
from foreign import od_api_examples, write_examples

import imgrec
from imgrec import InputError, PackOptions
from imgrec.format import schema
from imgrec.format.framing import read_records


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("od")
    images = draw(root / "images", count=8, seed=3, negatives=2)
    return root, images


def od_record(tmp_path, drawn, name="train.tfrecord", examples=None):
    root, images = drawn
    return write_examples(tmp_path / name, examples or od_api_examples(root / "images", images))


def check_boxes(out, slack: float) -> tuple[int, int]:
    """Every example's boxes cover their rectangles; (examples, objects) read."""
    n = objects = 0
    for ex in imgrec.dataset(out, dtype="uint8", with_filenames=True):
        labels = ex["bounding_boxes"]["labels"].numpy() - 1  # ids from 1: colour index + 1
        boxes = ex["bounding_boxes"]["boxes"].numpy()
        why = lines_up(ex["image"].numpy(), boxes, labels, slack)
        assert why is None, (ex["filename"].numpy(), why)
        crowd = ex["objects"]["is_crowd"].numpy()
        difficult = ex["objects"]["difficult"].numpy()
        assert list(crowd) == [int(c == 1) for c in labels]
        assert list(difficult) == [int(c == 2) for c in labels]
        n += 1
        objects += len(labels)
    return n, objects


@pytest.mark.slow
@pytest.mark.parametrize("opts", [{}, {"resize": (64, 96), "resize_mode": "fill"}],
                         ids=["as-stored", "fill"])  # fmt: skip
def test_the_objects_are_kept_where_their_rectangles_are(drawn, tmp_path, opts):
    _, images = drawn
    shard = od_record(tmp_path, drawn)
    m = imgrec.convert(shard, tmp_path / "out", PackOptions(**opts))
    assert m.records == len(images) and not m.skipped
    assert m.annotations is not None
    assert m.annotations.classes == {1: "red", 2: "green", 3: "blue"}
    assert m.annotations.sources == [("tfrecord", str(shard))]
    n, objects = check_boxes(tmp_path / "out", slack=1.5 if opts else 1.0)
    assert n == len(images)
    if not opts:
        assert objects == sum(len(d.boxes) for d in images)
    label_map = (tmp_path / "out" / "label_map.pbtxt").read_text()
    assert 'item {\n  id: 2\n  name: "green"\n  display_name: "green"\n}' in label_map


def test_texts_areas_and_source_ids_are_kept_and_negatives_stay_negatives(drawn, tmp_path):
    root, images = drawn
    m = imgrec.convert(od_record(tmp_path, drawn), tmp_path / "out")
    by_name = {}
    for shard in sorted((tmp_path / "out").glob("*.tfrecord")):
        for _, data in read_records(shard):
            rec = schema.parse(data)
            by_name[rec.filename] = rec
    for n, d in enumerate(images):
        o = by_name[d.rel].objects
        assert o is not None and o.source_id == str(100 + n)
        assert sorted(o.text) == sorted(NAMES[c] for *_, c in d.boxes)
        want = sorted(float((x1 - x0) * (y1 - y0)) for x0, y0, x1, y1, _ in d.boxes)
        assert sorted(o.area) == want  # the records' areas, not recomputed
        assert by_name[d.rel].orientation == 1  # stored upright, with its boxes
    assert m.stats.without_objects == sum(1 for d in images if not d.boxes) == 2
    assert sum(m.stats.objects.values()) == sum(len(d.boxes) for d in images)


def test_inspect_counts_the_objects(drawn, tmp_path):
    _, images = drawn
    imgrec.convert(od_record(tmp_path, drawn), tmp_path / "out")
    total = sum(len(d.boxes) for d in images)
    r = run("inspect", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert f"objects:   {total} in {len(images)} images (2 without objects)" in r.output
    summary = json.loads(run("inspect", tmp_path / "out", "--json").output)
    assert summary["objects"]["objects"] == total


def test_records_whose_objects_cannot_be_used_are_skipped_naming_file_and_record(drawn, tmp_path):
    root, images = drawn
    examples = od_api_examples(root / "images", images)
    feat = [ex.features.feature for ex in examples]
    del feat[1]["image/object/bbox/ymax"].float_list.value[-1]  # one corner short
    feat[2]["image/object/bbox/xmax"].float_list.value[0] = 1.25  # past the right edge
    feat[3]["image/object/bbox/xmax"].float_list.value[0] = 1.00001  # float32's rounding: 1
    shard = od_record(tmp_path, drawn, examples=examples)
    m = imgrec.convert(shard, tmp_path / "out")
    assert {s.path for s in m.skipped} == {images[1].rel, images[2].rel}
    reasons = {s.path: s.reason for s in m.skipped}
    assert reasons[images[1].rel].startswith(f"bad-annotation: {shard}, record 1: the object")
    assert "image/object/bbox/ymax" in reasons[images[1].rel]
    assert f"{shard}, record 2: object 0: the box (x " in reasons[images[2].rel]
    assert "..1.25, y " in reasons[images[2].rel]
    assert "is outside the image" in reasons[images[2].rel]
    assert m.records == len(images) - 2
    for shard in (tmp_path / "out").glob("*.tfrecord"):
        for _, data in read_records(shard):
            rec = schema.parse(data)
            if rec.filename == images[3].rel:
                assert rec.objects is not None and max(rec.objects.xmax) <= 1.0


def test_a_class_id_with_two_names_stops_the_run_naming_both_records(drawn, tmp_path):
    root, images = drawn
    examples = od_api_examples(root / "images", images)
    texts = examples[4].features.feature["image/object/class/text"].bytes_list.value
    labels = examples[4].features.feature["image/object/class/label"].int64_list.value
    texts[0] = b"crimson" if labels[0] == 1 else b"red"  # id 1 is red elsewhere
    shard = od_record(tmp_path, drawn, examples=examples)
    with pytest.raises(InputError, match=r"record 4: class (id \d is named|'red' has id)"):
        imgrec.convert(shard, tmp_path / "out")
    r = run("convert", shard, tmp_path / "cli")
    assert r.exit_code == 1 and str(shard) in r.stderr and "Traceback" not in r.stderr


def test_records_without_object_keys_have_no_annotations(tmp_path):
    from foreign import images as photos
    from foreign import write_inception

    write_inception(tmp_path / "train-00000-of-00001", photos(3))
    m = imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "out")
    assert m.annotations is None and not (tmp_path / "out" / "label_map.pbtxt").exists()


def test_oriented_boxes_move_as_the_pixels_do():
    from imgrec.images.geometry import oriented_boxes
    from imgrec.images.pixels import orient

    h, w = 6, 10
    arr = np.zeros((h, w, 1), np.uint8)
    arr[1:3, 2:7] = 1
    box = np.array([[2 / w, 1 / h, 7 / w, 3 / h]])
    for o in range(1, 9):
        shown = orient(arr, o)
        ys, xs = np.nonzero(shown[..., 0])
        sh, sw = shown.shape[:2]
        want = [xs.min() / sw, ys.min() / sh, (xs.max() + 1) / sw, (ys.max() + 1) / sh]
        np.testing.assert_allclose(oriented_boxes(box, o)[0], want, err_msg=str(o))


def test_keys_names_the_image_and_objects_are_still_found_by_their_names(drawn, tmp_path):
    _, images = drawn
    keys = (("image", "image/encoded"), ("filename", "image/filename"))
    m = imgrec.convert(od_record(tmp_path, drawn), tmp_path / "out", PackOptions(source_keys=keys))
    assert sum(m.stats.objects.values()) == sum(len(d.boxes) for d in images)


def test_ids_without_texts_are_named_by_number_and_masks_are_said_not_kept(drawn, tmp_path):
    root, images = drawn
    examples = od_api_examples(root / "images", images)
    for ex in examples:
        del ex.features.feature["image/object/class/text"]
    examples[0].features.feature["image/object/mask"].bytes_list.value.append(b"png")
    m = imgrec.convert(od_record(tmp_path, drawn, examples=examples), tmp_path / "out")
    assert m.annotations is not None and m.annotations.classes == {1: "1", 2: "2", 3: "3"}
    (warning,) = m.annotations.warnings
    assert "image/object/mask are not converted" in warning


def test_a_resume_finds_the_same_objects(drawn, tmp_path, monkeypatch):
    shard = od_record(tmp_path, drawn)
    opts = PackOptions(shards=2)
    whole = imgrec.convert(shard, tmp_path / "whole", opts)

    def interrupted(folder, manifest) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped after its shards, before its manifest
        m.setattr("imgrec.packing.driver.write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            imgrec.convert(shard, tmp_path / "out", opts)
    resumed = imgrec.convert(shard, tmp_path / "out", opts, resume=True)
    assert [s.sha256 for s in resumed.shards] == [s.sha256 for s in whole.shards]
    assert resumed.annotations == whole.annotations


def test_a_class_id_readers_cannot_hold_skips_its_record(drawn, tmp_path):
    root, images = drawn
    examples = od_api_examples(root / "images", images)
    boxed = [i for i, d in enumerate(images) if d.boxes]
    for i, label in zip(boxed, (-1, 2**40), strict=False):  # padding's id; past int32
        examples[i].features.feature["image/object/class/label"].int64_list.value[0] = label
    m = imgrec.convert(od_record(tmp_path, drawn, examples=examples), tmp_path / "out")
    reasons = {s.path: s.reason for s in m.skipped}
    assert set(reasons) == {images[boxed[0]].rel, images[boxed[1]].rel}
    assert "object 0: class id -1 is outside 0..2147483647" in reasons[images[boxed[0]].rel]
    assert f"class id {2**40} is outside" in reasons[images[boxed[1]].rel]
