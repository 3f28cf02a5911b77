"""`imgrec pack --annotations` (and metadata.jsonl in SRC): boxes stored where the pixels
are, in every resize mode and EXIF orientation, read back in step by imgrec.dataset and by
plain TensorFlow; bad annotations skip their image with a reason; label map, manifest and
inspect say what is there."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from annotated import NAMES, draw, lines_up, write_coco, write_voc, write_yolo
from fixtures import run

import imgrec
from imgrec import PackOptions, pack
from imgrec.core.errors import InputError
from imgrec.format import schema
from imgrec.format.framing import read_records

pytestmark = pytest.mark.slow

MODES = {
    "as-stored": {},
    "raw": {"format": "raw"},
    "jpeg": {"format": "jpeg"},
    "stretch": {"resize": (64, 96)},
    "fill": {"resize": (64, 96), "resize_mode": "fill"},
    "pad": {"resize": (64, 96), "resize_mode": "pad"},
    "fit": {"resize": (64, 96), "resize_mode": "fit"},
    "max-side": {"max_side": 60},
}
WRITERS = {
    "coco": lambda d, p: write_coco(d, p / "instances.json"),
    "voc": lambda d, p: write_voc(d, p / "Annotations"),
    "yolo": lambda d, p: write_yolo(d, p / "labels"),
}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("drawn")
    return root, draw(root / "images")


def class_index(manifest) -> dict[int, int]:
    """The dataset's class ids -> the index of their colour in NAMES."""
    return {i: NAMES.index(name) for i, name in manifest.annotations.classes.items()}


def check_dataset(out, manifest, slack, **read) -> int:
    """Every example's boxes match the rectangles in its pixels; returns how many."""
    index = class_index(manifest)
    n = 0
    for ex in imgrec.dataset(out, dtype="uint8", with_filenames=True, **read):
        labels = [index[int(v)] for v in ex["bounding_boxes"]["labels"].numpy()]
        why = lines_up(ex["image"].numpy(), ex["bounding_boxes"]["boxes"].numpy(),
                       np.array(labels), slack)  # fmt: skip
        assert why is None, (ex["filename"].numpy(), why)
        n += 1
    return n


def check_plain_tensorflow(out, manifest, slack) -> int:
    """Read as the Model Garden's decoder does: parse_single_example and decode_image on
    the stored bytes, no imgrec; the boxes line up there too."""
    import tensorflow as tf

    var = tf.io.VarLenFeature
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string, ""),
        "image/raw": tf.io.FixedLenFeature([], tf.string, ""),
        "image/shape": tf.io.FixedLenFeature([3], tf.int64),
        **{k: var(tf.float32) for k in (schema.XMIN, schema.YMIN, schema.XMAX, schema.YMAX)},
        schema.OBJECT_LABEL: var(tf.int64),
    }
    index = class_index(manifest)
    n = 0
    for shard in sorted(out.glob("*.tfrecord")):
        for _, data in read_records(shard):
            f = tf.io.parse_single_example(data, spec)
            if len(f["image/encoded"].numpy()):
                image = tf.io.decode_image(f["image/encoded"], channels=3).numpy()
            else:
                shape = f["image/shape"].numpy()
                image = np.frombuffer(f["image/raw"].numpy(), np.uint8).reshape(shape)
            d = {k: tf.sparse.to_dense(f[k]).numpy() for k in spec if k.startswith("image/object")}
            boxes = np.stack([d[schema.YMIN], d[schema.XMIN], d[schema.YMAX], d[schema.XMAX]], -1)
            labels = np.array([index[int(v)] for v in d[schema.OBJECT_LABEL]], int)
            assert lines_up(image, boxes.reshape(-1, 4), labels, slack) is None
            n += 1
    return n


@pytest.mark.parametrize("mode", MODES)
def test_boxes_cover_their_rectangles_in_every_resize_mode(drawn, tmp_path, mode):
    root, images = drawn
    ann = write_voc(images, tmp_path / "Annotations")
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann), **MODES[mode]))
    assert m.records == len(images) and not m.skipped
    slack = 1.0 if mode in ("as-stored", "raw") else 2.0  # resampling blurs edges by a pixel
    assert check_dataset(tmp_path / "out", m, slack) == len(images)
    assert check_plain_tensorflow(tmp_path / "out", m, slack) == len(images)
    # every rotated source is stored upright: no reader has an orientation to apply
    assert m.stats.oriented == 0


@pytest.mark.parametrize("kind", WRITERS)
def test_each_format_packs_the_same_boxes(drawn, tmp_path, kind):
    root, images = drawn
    ann = WRITERS[kind](images, tmp_path)
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    assert m.records == len(images) and not m.skipped
    assert sorted(m.annotations.classes.values()) == sorted(NAMES)
    assert check_dataset(tmp_path / "out", m, 1.0) == len(images)
    # read-time resize leaves the fractions right
    assert check_dataset(tmp_path / "out", m, 2.0, resize=(50, 70)) == len(images)
    objects = m.stats.to_dict()["objects"]
    assert objects["objects"] == sum(len(d.boxes) for d in images)
    assert objects["without_objects"] == sum(not d.boxes for d in images) == 2


def test_batches_pad_the_object_lists_with_minus_one(drawn, tmp_path):
    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json")
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann), shuffle=False))
    batch = next(iter(imgrec.dataset(tmp_path / "out", batch_size=6, resize=(40, 40))))
    labels = batch["bounding_boxes"]["labels"].numpy()
    counts = [len(d.boxes) for d in images[:6]]
    assert labels.shape == (6, max(counts))
    assert [(row >= 0).sum() for row in labels] == counts  # -1 past each image's own
    assert (batch["bounding_boxes"]["boxes"].numpy()[labels < 0] == -1).all()
    assert batch["image"].shape == (6, 40, 40, 3)


def test_the_label_map_is_the_object_detection_apis_text_format(drawn, tmp_path):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json", first_id=7)
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    # object_detection/protos/string_int_label_map.proto's fields, in a private pool
    f = descriptor_pb2.FileDescriptorProto(name="labelmap.proto", package="t", syntax="proto2")
    fd = descriptor_pb2.FieldDescriptorProto
    item = f.message_type.add(name="Item")
    item.field.add(name="name", number=1, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
    item.field.add(name="id", number=2, type=fd.TYPE_INT32, label=fd.LABEL_OPTIONAL)
    item.field.add(name="display_name", number=3, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
    f.message_type.add(name="Map").field.add(
        name="item", number=1, type=fd.TYPE_MESSAGE, label=fd.LABEL_REPEATED, type_name=".t.Item"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    parsed = text_format.Parse(
        (tmp_path / "out" / "label_map.pbtxt").read_text(),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Map"))(),
    )
    assert [(i.id, i.name) for i in parsed.item] == [(7 + k, n) for k, n in enumerate(NAMES)]


def test_a_box_outside_its_image_skips_the_image_with_the_file_and_object(drawn, tmp_path):
    root, images = drawn
    ann = write_voc(images, tmp_path / "Annotations")
    first = next(d for d in images if d.boxes)
    xml = ann / (first.rel.rsplit(".", 1)[0] + ".xml")
    text = xml.read_text()
    xml.write_text(text.replace(f"<xmax>{first.boxes[0][2]}</xmax>",
                                f"<xmax>{first.width + 40}</xmax>", 1))  # fmt: skip
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    assert [s.path for s in m.skipped] == [first.rel]
    reason = m.skipped[0].reason
    assert reason.startswith("bad-annotation: ") and str(xml) in reason
    assert "object 1" in reason and "outside" in reason
    with pytest.raises(InputError, match="stopped by --on-error fail"):
        pack(root / "images", tmp_path / "out2", PackOptions(annotations=str(ann),
                                                             on_error="fail"))  # fmt: skip


def test_a_size_given_for_the_stored_pixels_of_a_rotated_photo_is_named(drawn, tmp_path):
    root, images = drawn
    rotated = next(d for d in images if d.orientation == 6)
    ann = write_coco(images, tmp_path / "instances.json")
    coco = json.loads(ann.read_text())
    for image in coco["images"]:
        if image["file_name"] == rotated.rel:  # as a tool that ignores EXIF would write it
            image["width"], image["height"] = rotated.height, rotated.width
    ann.write_text(json.dumps(coco))
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    [skipped] = m.skipped
    assert skipped.path == rotated.rel
    assert f"gives the image's size as {rotated.height}x{rotated.width}" in skipped.reason
    assert "before EXIF orientation 6" in skipped.reason


def test_an_annotation_for_an_image_not_in_src_is_an_error_naming_both(drawn, tmp_path):
    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json")
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = "gone.jpg"
    ann.write_text(json.dumps(coco))
    r = run("pack", root / "images", tmp_path / "out", "--annotations", ann)
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: {ann}: names the image gone.jpg, which is not in SRC")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["voc", "yolo"])
def test_a_label_file_whose_image_is_not_in_src_is_an_error_naming_it(drawn, tmp_path, kind):
    root, images = drawn
    folder = (write_voc if kind == "voc" else write_yolo)(images, tmp_path / kind)
    first = sorted(p for p in folder.rglob("*.xml" if kind == "voc" else "*.txt")
                   if p.name != "classes.txt")[0]  # fmt: skip
    typo = first.with_name("typo_" + first.name)  # its image renamed, or the file misnamed
    first.rename(typo)
    r = run("pack", root / "images", tmp_path / "out", "--annotations", folder)
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith(f"Error: {typo}: is the annotation file of an image that is not")
    assert not (tmp_path / "out").exists()


def test_metadata_columns_become_fields_read_in_step(tmp_path):
    root = tmp_path / "src"
    images = draw(root, count=4, negatives=0)
    rows = [{"file_name": d.rel, "caption": f"image {i}", "score": i + 0.5, "n": i,
             "emb": [float(i)] * (i + 1)} for i, d in enumerate(images)]  # fmt: skip
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = pack(root, tmp_path / "out", PackOptions(shuffle=False))
    assert m.annotations.columns == {"caption": "str", "score": "float", "n": "int",
                                     "emb": "floats"}  # fmt: skip
    got = {
        ex["filename"].numpy().decode(): ex["fields"]
        for ex in imgrec.dataset(tmp_path / "out", with_filenames=True)
    }
    for i, d in enumerate(images):
        f = got[d.rel]
        assert f["caption"].numpy().decode() == f"image {i}"
        assert f["score"].numpy() == pytest.approx(i + 0.5)
        assert f["n"].numpy() == i
        assert list(f["emb"].numpy()) == [float(i)] * (i + 1)
    batch = next(iter(imgrec.dataset(tmp_path / "out", batch_size=4, resize=(32, 32))))
    emb = batch["fields"]["emb"].numpy()
    assert emb.shape == (4, 4) and np.isnan(emb[0, 1:]).all()  # padded with NaN


def test_an_image_without_a_metadata_row_is_skipped_saying_so(tmp_path):
    root = tmp_path / "src"
    images = draw(root, count=3, negatives=0)
    (root / "metadata.csv").write_text("file_name,score\n" + f"{images[0].rel},1\n"
                                       + f"{images[1].rel},2\n")  # fmt: skip
    m = pack(root, tmp_path / "out")
    assert [s.path for s in m.skipped] == [images[2].rel]
    assert "metadata.csv: has no row for this image" in m.skipped[0].reason


def test_inspect_counts_objects_and_verify_passes(drawn, tmp_path):
    root, images = drawn
    ann = write_yolo(images, tmp_path / "labels")
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    r = run("inspect", tmp_path / "out")
    total = sum(len(d.boxes) for d in images)
    assert f"objects:   {total} in {len(images)} images (2 without objects)" in r.output
    assert re.search(r"boxes:     width [\d.]+\.\.[\d.]+ px", r.output)
    summary = json.loads(run("inspect", tmp_path / "out", "--json").output)
    assert summary["objects"]["objects"] == total
    assert summary["annotations"]["sources"] == [{"kind": "yolo", "path": str(ann)}]
    assert run("verify", tmp_path / "out", "--decode").exit_code == 0


def test_packs_summary_counts_the_objects(drawn, tmp_path):
    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json")
    r = run("pack", root / "images", tmp_path / "out", "--annotations", ann)
    assert r.exit_code == 0, r.output
    total = sum(len(d.boxes) for d in images)
    classes = len({b[4] for d in images for b in d.boxes})
    assert f"objects: {total} of {classes} classes (label_map.pbtxt);" in r.output
    assert "2 images without objects" in r.output


def test_pack_warns_of_what_the_annotation_files_hold_that_is_not_packed(drawn, tmp_path):
    root, images = drawn
    ann = write_voc(images, tmp_path / "xml")
    first = sorted(ann.glob("*.xml"))[0]
    part = "<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
    first.write_text(first.read_text().replace("</object>", part + "</bndbox></part></object>", 1))
    r = run("pack", root / "images", tmp_path / "out", "--annotations", ann)
    assert r.exit_code == 0, r.output
    assert "warning: 1 object(s) have <part> boxes" in r.stderr


def test_verify_names_a_record_whose_objects_are_malformed(tmp_path):
    from samples import jpeg, jpeg_record

    from imgrec.format.framing import ShardWriter

    rec = jpeg_record("a.jpg", jpeg(1))
    bad = [
        schema.Objects(xmin=(0.5,), ymin=(0.1,), xmax=(0.2,), ymax=(0.3,), label=(1,)),
        schema.Objects(xmin=(0.1,), ymin=(0.1,), xmax=(0.2,), ymax=(1.5,), label=(1,)),
        schema.Objects(xmin=(0.1, 0.2), ymin=(0.1,), xmax=(0.2,), ymax=(0.3,), label=(1,)),
    ]
    from dataclasses import replace

    with ShardWriter(tmp_path / "x.tfrecord") as w:
        for objects in bad:
            w.write(schema.serialize(replace(rec, objects=objects)))
    r = run("verify", tmp_path / "x.tfrecord")
    assert r.exit_code == 1
    assert "record 0" in r.output + r.stderr and "not inside [0, 1]" in r.output + r.stderr
    assert "object lists differ in length" in r.output + r.stderr


def test_without_annotations_records_and_manifest_are_as_before(drawn, tmp_path):
    root, _ = drawn
    m = pack(root / "images", tmp_path / "out")
    assert m.annotations is None and "annotations" not in m.to_dict()
    assert "objects" not in m.stats.to_dict() and "annotations" not in m.to_dict()["options"]
    for shard in (tmp_path / "out").glob("*.tfrecord"):
        for _, data in read_records(shard):
            assert b"image/object" not in data and b"image/source_id" not in data
    assert not (tmp_path / "out" / "label_map.pbtxt").exists()


def test_a_resume_is_refused_when_the_annotations_changed_and_resumes_when_not(
    drawn, tmp_path, monkeypatch
):
    root, images = drawn
    ann = write_voc(images, tmp_path / "Annotations")
    opts = PackOptions(annotations=str(ann), shards=2)
    full = pack(root / "images", tmp_path / "whole", opts)

    def interrupted(folder, manifest) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped after its shards, before its manifest
        m.setattr("imgrec.packing.driver.write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pack(root / "images", tmp_path / "out", opts)
    xml = next(ann.glob("*.xml"))
    before = xml.read_text()
    xml.write_text(before.replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    with pytest.raises(InputError, match="the annotations differ from the interrupted run's"):
        pack(root / "images", tmp_path / "out", opts, resume=True)
    xml.write_text(before)
    resumed = pack(root / "images", tmp_path / "out", opts, resume=True)
    assert [s.sha256 for s in resumed.shards] == [s.sha256 for s in full.shards]


def test_the_preview_draws_each_box_on_its_rectangle(drawn, tmp_path):
    from PIL import Image

    from imgrec.reading.preview import PALETTE, TILE

    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json")
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann), shuffle=False))
    r = run("inspect", tmp_path / "out", "--preview", tmp_path / "sheet.png", "--json")
    preview = json.loads(r.output)["preview"]
    assert preview["boxes"] == sum(len(d.boxes) for d in images)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB")).astype(int)
    d = images[0]  # the first tile: its first box's outline, at its top edge's middle
    x0, y0, x1, _, cls = d.boxes[0]
    scale = TILE / max(d.width, d.height)
    left, top = (TILE - round(d.width * scale)) // 2, (TILE - round(d.height * scale)) // 2
    x, y = left + round((x0 + x1) / 2 * scale), top + round(y0 * scale)
    colour = PALETTE[(1 + cls) % len(PALETTE)]  # write_coco's ids are 1 + the class
    near = np.abs(sheet[y - 1 : y + 2, x - 1 : x + 2] - colour).sum(axis=-1).min()
    assert near < 60, (sheet[y - 1 : y + 2, x - 1 : x + 2], colour)


def test_decode_writes_each_images_annotations_beside_it(drawn, tmp_path):
    root, images = drawn
    ann = write_voc(images, tmp_path / "Annotations")
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    r = run("decode", tmp_path / "out", "-o", tmp_path / "dec", "--to", "png")
    assert r.exit_code == 0, r.output
    index = class_index(m)
    from PIL import Image

    sidecars = sorted((tmp_path / "dec").glob("*.png.json"))
    assert len(sidecars) == len(images)
    for sidecar in sidecars:
        said = json.loads(sidecar.read_text())
        image = np.asarray(Image.open(sidecar.with_suffix("")).convert("RGB"))
        boxes = np.array(said["bounding_boxes"]["boxes"]).reshape(-1, 4)
        labels = np.array([index[v] for v in said["bounding_boxes"]["labels"]], int)
        assert lines_up(image, boxes, labels, 1.0) is None, said["filename"]
    assert run("decode", tmp_path / "out", "--stats").exit_code == 0


@pytest.mark.parametrize("crop", ["random", "center"])
def test_read_time_crops_and_flips_move_the_boxes_with_the_pixels(drawn, tmp_path, crop):
    root, images = drawn
    ann = write_coco(images, tmp_path / "instances.json")
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    for epoch_seed in (1, 2):  # new windows and flips each seed
        n = check_dataset(tmp_path / "out", m, 2.5, resize=(64, 64), crop=crop, seed=epoch_seed)
        assert n == len(images)
    if crop == "random":  # some flipped: a box's mirror image is not where it was
        flipped = [
            float(ex["bounding_boxes"]["boxes"][0][1])
            for ex in imgrec.dataset(tmp_path / "out", resize=(64, 64), crop="random", seed=5)
            if len(ex["bounding_boxes"]["labels"])
        ]
        assert len(set(np.round(flipped, 3))) > 1


def test_a_centre_crop_keeps_the_area_of_what_it_shows(tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (200, 100), (128, 128, 128)).save(src / "a.png")
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 100}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 200, 100],
                             "area": 20000.0, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "all"}]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(coco))
    pack(src, tmp_path / "out", PackOptions(annotations=str(tmp_path / "c.json")))
    [ex] = list(imgrec.dataset(tmp_path / "out", resize=(32, 32), crop="center"))
    # the centre square of the short side times 32/64: 50 x 50 pixels of the whole box
    assert float(ex["objects"]["area"][0]) == pytest.approx(2500, rel=0.01)
    assert np.allclose(ex["bounding_boxes"]["boxes"][0].numpy(), [0, 0, 1, 1])
