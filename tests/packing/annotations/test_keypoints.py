"""COCO keypoints packed under the TF Object Detection API's keys (image/object/keypoint/x,
y, visibility, num, text): a dot is drawn at each keypoint of images saved with an EXIF
orientation, and every labelled keypoint read back must land on its dot's pixels, whatever
moved them (orientation, each --resize mode, --max-side, read-time resize, crops and flips),
while every dot left in the picture keeps its labelled point."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fixtures import run
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.format import schema
from imgrec.format.framing import read_records

slow = pytest.mark.slow  # the tests that pack and read images

COLOURS = [(250, 20, 20), (20, 250, 20), (20, 20, 250)]  # one per keypoint slot
NAMES = ["head", "hand", "foot"]  # no left/right pair: a flip swaps no slot
PAIRED = ["left_eye", "right_eye", "nose"]  # a flip swaps slots 0 and 1
RADIUS = 3  # dots are 7 x 7 pixels, centred on the keypoint's pixel
ORIENTATIONS = [1, 6, 3, 8, 2, 5, 4, 7]
# What turns the displayed pixels into stored ones that display so (Pillow's exif_transpose
# undone): 6 and 8 are each other's inverse, the rest their own.
UNDO = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270}  # fmt: skip
MODES = {
    "as-stored": {},
    "stretch": {"resize": (64, 96), "resize_mode": "stretch"},
    "fit": {"resize": (64, 96), "resize_mode": "fit"},
    "fill": {"resize": (64, 96), "resize_mode": "fill"},
    "pad": {"resize": (64, 96), "resize_mode": "pad"},
    "max-side": {"max_side": 60},
}


@dataclass(frozen=True)
class Person:
    points: tuple[tuple[int, int, int], ...]  # COCO's x, y (pixel indices), v per slot
    bbox: tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Pictured:
    rel: str
    width: int  # as displayed
    height: int
    people: tuple[Person, ...]


def draw(src: Path, count: int = 12, seed: int = 0) -> list[Pictured]:
    """``count`` images (JPEG and PNG, every EXIF orientation), 1 or 2 people each with a
    dot per labelled keypoint (v 1 or 2; v 0 ones are not drawn), dots apart."""
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        h, w = int(rng.integers(100, 170)), int(rng.integers(100, 170))
        arr = np.full((h, w, 3), 128, np.uint8)
        centres: list[tuple[int, int]] = []
        people = []
        for _ in range(int(rng.integers(1, 3))):
            points = []
            for k in range(3):
                v = int(rng.choice([2, 2, 2, 1, 0]))
                if v == 0:
                    points.append((0, 0, 0))
                    continue
                while True:
                    x, y = int(rng.integers(1, w - 1)), int(rng.integers(1, h - 1))
                    if all(max(abs(x - a), abs(y - b)) > 4 * RADIUS for a, b in centres):
                        break
                centres.append((x, y))
                arr[max(0, y - RADIUS) : y + RADIUS + 1, max(0, x - RADIUS) : x + RADIUS + 1] = (
                    COLOURS[k]
                )
                points.append((x, y, v))
            drawn = [(x, y) for x, y, v in points if v]
            if drawn:
                x0 = max(0, min(x for x, _ in drawn) - RADIUS - 1)
                y0 = max(0, min(y for _, y in drawn) - RADIUS - 1)
                x1 = min(w, max(x for x, _ in drawn) + RADIUS + 2)
                y1 = min(h, max(y for _, y in drawn) + RADIUS + 2)
            else:
                x0, y0, x1, y1 = 2, 2, 10, 10
            people.append(Person(tuple(points), (x0, y0, x1 - x0, y1 - y0)))
        orientation = ORIENTATIONS[i % len(ORIENTATIONS)]
        im = Image.fromarray(arr)
        if orientation != 1:
            im = im.transpose(UNDO[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        rel = f"img{i:03d}." + ("jpg" if i % 2 == 0 else "png")
        if rel.endswith(".jpg"):
            im.save(src / rel, "JPEG", quality=98, subsampling=0, exif=exif.tobytes())
        else:
            im.save(src / rel, "PNG", exif=exif.tobytes())
        out.append(Pictured(rel, w, h, tuple(people)))
    return out


def write_coco(pictured: list[Pictured], path: Path, names: list[str] = NAMES) -> Path:
    """COCO person keypoints: a person per drawn person, one more in the first image
    without a keypoints array, and a "ball" (a category naming no keypoints) in every third
    image."""
    images, annotations = [], []
    for n, p in enumerate(pictured, 1):
        images.append({"id": n, "file_name": p.rel, "width": p.width, "height": p.height})
        for person in p.people:
            ann = {"id": len(annotations) + 1, "image_id": n, "category_id": 1,
                   "bbox": list(person.bbox), "iscrowd": 0, "area": 10.0,
                   "keypoints": [c for pt in person.points for c in pt],
                   "num_keypoints": sum(v > 0 for *_, v in person.points)}  # fmt: skip
            annotations.append(ann)
        if n == 1:
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": 1,
                                "bbox": [2, 2, 8, 8], "iscrowd": 0, "area": 64.0})  # fmt: skip
        if n % 3 == 0:
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": 2,
                                "bbox": [1, 1, 4, 4], "iscrowd": 0, "area": 16.0})  # fmt: skip
    categories = [{"id": 1, "name": "person", "keypoints": names, "skeleton": []},
                  {"id": 2, "name": "ball"}]  # fmt: skip
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("keypoints")
    pictured = draw(root / "images")
    ann = write_coco(pictured, root / "person_keypoints.json")
    # an image the file does not list: a negative, with the (empty) keypoint keys all the same
    Image.new("RGB", (40, 30), (128, 128, 128)).save(root / "images" / "unlisted.png")
    return root, pictured, ann


def _near(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.abs(image[..., :3].astype(int) - colour).sum(axis=-1) < 120


def lands(image: np.ndarray, points: np.ndarray, seen: np.ndarray, order: list[int],
          slack: float = 1.5, reach: float = 10.0) -> str | None:  # fmt: skip
    """Why the keypoints (N, K, 2 (y, x) fractions; visibility N, K) do not sit on their
    dots in ``image`` when slot k holds the dot coloured ``order[k]``: each labelled point
    must be within ``slack`` pixels of a pixel of its colour, and each pixel of a dot colour
    (away from the edges, where a cut dot's centre may have left) within ``reach`` of a
    labelled point of that colour. None when they do."""
    h, w = image.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    for k, colour in enumerate(COLOURS):
        slot = order.index(k)
        near = _near(image, colour)
        ys, xs = rows[near] + 0.5, cols[near] + 0.5
        placed = [(y * h, x * w) for (y, x), v in zip(points[:, slot], seen[:, slot], strict=True)
                  if v > 0]  # fmt: skip
        for py, px in placed:
            if not len(ys) or np.hypot(ys - py, xs - px).min() > slack:
                return f"keypoint {slot} at ({px:.1f}, {py:.1f}) is on no dot of its colour"
        inner = (ys > reach) & (ys < h - reach) & (xs > reach) & (xs < w - reach)
        for y, x in zip(ys[inner], xs[inner], strict=True):
            if not placed or min(np.hypot(y - py, x - px) for py, px in placed) > reach:
                return f"a dot of slot {slot}'s colour at ({x}, {y}) has no labelled keypoint"
    return None


def check(out: Path, orders: list[list[int]], **read) -> list[int]:
    """Every example's keypoints against its pixels; per example, the first of ``orders``
    that fits (which slot holds which dot)."""
    fitted = []
    for ex in imgrec.dataset(out, dtype="uint8", with_filenames=True, **read):
        image = ex["image"].numpy()
        points = ex["keypoints"]["points"].numpy()
        seen = ex["keypoints"]["visibility"].numpy()
        n = len(ex["bounding_boxes"]["labels"])
        assert points.shape == (n, 3, 2) and seen.shape == (n, 3), (points.shape, seen.shape)
        whys = [lands(image, points, seen, order) for order in orders]
        assert any(why is None for why in whys), (ex["filename"].numpy(), whys)
        fitted.append(whys.index(None))
    return fitted


def _records(out: Path) -> list[bytes]:
    return [data for shard in sorted(out.glob("*.tfrecord")) for _, data in read_records(shard)]


@slow
@pytest.mark.parametrize("mode", MODES)
def test_each_keypoint_lands_on_its_dot_in_every_resize_mode(drawn, tmp_path, mode):
    root, pictured, ann = drawn
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann), **MODES[mode]))
    assert m.records == len(pictured) + 1 and not m.skipped, m.skipped
    assert m.annotations is not None and m.annotations.keypoints == {1: NAMES}
    assert check(tmp_path / "out", [[0, 1, 2]]) == [0] * (len(pictured) + 1)
    labelled = 0
    for data in _records(tmp_path / "out"):
        o = schema.parse(data).objects
        assert o is not None and o.keypointed
        n = len(o.xmin)
        assert len(o.keypoint_x) == len(o.keypoint_y) == len(o.keypoint_visibility) == 3 * n
        assert o.keypoint_num == tuple(
            sum(v > 0 for v in o.keypoint_visibility[3 * i : 3 * i + 3]) for i in range(n)
        )
        for i, label in enumerate(o.label):
            assert o.keypoint_text[3 * i : 3 * i + 3] == (tuple(NAMES) if label == 1 else ("",) * 3)
            if label == 2:  # a class without keypoints: its slots unlabelled
                assert o.keypoint_visibility[3 * i : 3 * i + 3] == (0, 0, 0)
        labelled += sum(v > 0 for v in o.keypoint_visibility)
    given = sum(v > 0 for p in pictured for person in p.people for *_, v in person.points)
    if mode == "fill":  # the centre crop cuts some points out
        assert 0 < labelled < given
    else:
        assert labelled == given


@slow
def test_plain_tensorflow_reads_the_keypoints_on_their_dots(drawn, tmp_path):
    """As the TF Object Detection API's decoder reads them: parse_single_example, the
    flat lists reshaped to (N, K), points on the decoded pixels."""
    import tensorflow as tf

    root, pictured, ann = drawn
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann), max_side=80))
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        schema.KEYPOINT_X: tf.io.VarLenFeature(tf.float32),
        schema.KEYPOINT_Y: tf.io.VarLenFeature(tf.float32),
        schema.KEYPOINT_VISIBILITY: tf.io.VarLenFeature(tf.int64),
        schema.KEYPOINT_NUM: tf.io.VarLenFeature(tf.int64),
        schema.KEYPOINT_TEXT: tf.io.VarLenFeature(tf.string),
    }
    for data in _records(tmp_path / "out"):
        f = tf.io.parse_single_example(data, spec)
        image = tf.io.decode_image(f["image/encoded"], channels=3).numpy()
        x, y = (tf.sparse.to_dense(f[k]).numpy().reshape(-1, 3) for k in
                (schema.KEYPOINT_X, schema.KEYPOINT_Y))  # fmt: skip
        seen = tf.sparse.to_dense(f[schema.KEYPOINT_VISIBILITY]).numpy().reshape(-1, 3)
        assert len(tf.sparse.to_dense(f[schema.KEYPOINT_NUM]).numpy()) == len(seen)
        assert (x[seen == 0] == 0).all() and (y[seen == 0] == 0).all()
        assert lands(image, np.stack([y, x], axis=-1), seen, [0, 1, 2]) is None


@slow
@pytest.mark.parametrize("crop", ["random", "center"])
def test_read_time_resize_crops_and_flips_move_the_keypoints(drawn, tmp_path, crop):
    root, pictured, ann = drawn
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    assert check(tmp_path / "out", [[0, 1, 2]], resize=(56, 56)) == [0] * (len(pictured) + 1)
    for seed in (1, 2, 3):
        check(tmp_path / "out", [[0, 1, 2]], resize=(56, 56), crop=crop, seed=seed)
    batch = next(iter(imgrec.dataset(tmp_path / "out", batch_size=4, resize=(56, 56))))
    points, seen = batch["keypoints"]["points"], batch["keypoints"]["visibility"]
    n = batch["bounding_boxes"]["labels"].shape[1]
    assert points.shape == (4, n, 3, 2) and seen.shape == (4, n, 3)
    padded = batch["bounding_boxes"]["labels"].numpy() == -1
    assert (seen.numpy()[padded] == -1).all()


@slow
def test_a_flip_swaps_left_and_right_keypoints(tmp_path):
    pictured = draw(tmp_path / "images", count=8, seed=3)
    ann = write_coco(pictured, tmp_path / "k.json", PAIRED)
    pack(tmp_path / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    fitted = []
    for seed in (1, 2, 3, 4):
        # unflipped, slot k holds dot k; flipped, left_eye's slot holds the other eye's dot
        fitted += check(tmp_path / "out", [[0, 1, 2], [1, 0, 2]], resize=(64, 64),
                        crop="random", seed=seed)  # fmt: skip
    assert 0 in fitted and 1 in fitted


@slow
def test_a_keypoint_outside_the_image_or_of_the_wrong_count_skips_its_image(drawn, tmp_path):
    root, pictured, ann = drawn
    data = json.loads(ann.read_text())
    first = next(a for a in data["annotations"] if a["image_id"] == 2 and "keypoints" in a)
    first["keypoints"][:3] = [pictured[1].width + 3, 5, 2]
    second = next(a for a in data["annotations"] if a["image_id"] == 3 and "keypoints" in a)
    second["keypoints"] = second["keypoints"][:6]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    m = pack(root / "images", tmp_path / "out", PackOptions(annotations=str(bad)))
    reasons = {s.path: s.reason for s in m.skipped}
    assert set(reasons) == {pictured[1].rel, pictured[2].rel}
    assert all(r.startswith("bad-annotation: ") for r in reasons.values())
    outside = reasons[pictured[1].rel]
    assert f"{bad}: annotation id {first['id']}: a keypoint" in outside
    assert f"is outside the {pictured[1].width}x{pictured[1].height} image" in outside
    assert (
        f"{bad}: annotation id {second['id']}: it has 2 keypoints where its category names 3"
        in reasons[pictured[2].rel]
    )


@slow
def test_inspect_decode_verify_preview_and_tfds_see_the_keypoints(drawn, tmp_path):
    root, pictured, ann = drawn
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    summary = json.loads(run("inspect", tmp_path / "out", "--json").output)
    points = summary["objects"]["keypoints"]
    labelled = [v for p in pictured for person in p.people for *_, v in person.points]
    assert points == {"records": len(pictured) + 1, "labelled": sum(v > 0 for v in labelled),
                      "visible": sum(v == 2 for v in labelled)}  # fmt: skip
    assert "keypoints: " in run("inspect", tmp_path / "out").output
    assert run("verify", tmp_path / "out").exit_code == 0
    r = run("decode", tmp_path / "out", "-o", tmp_path / "dec", "--to", "png")
    assert r.exit_code == 0, r.output
    for sidecar in sorted((tmp_path / "dec").glob("*.json")):
        said = json.loads(sidecar.read_text())["keypoints"]
        image = np.asarray(Image.open(sidecar.with_name(sidecar.name[: -len(".json")])))
        points, seen = np.array(said["points"]).reshape(-1, 3, 2), np.array(said["visibility"])
        assert lands(image, points, seen.reshape(-1, 3), [0, 1, 2]) is None
    sheet = tmp_path / "sheet.png"
    r = run("inspect", tmp_path / "out", "--preview", sheet)
    assert r.exit_code == 0 and "keypoints" in r.output, r.output
    assert run("tfds", tmp_path / "out").exit_code == 0
    features = json.loads((tmp_path / "out" / "features.json").read_text())
    assert schema.KEYPOINT_VISIBILITY in json.dumps(features)


@slow
def test_verify_names_keypoint_lists_of_the_wrong_length(tmp_path):
    from dataclasses import replace

    from samples import jpeg, jpeg_record

    from imgrec.format.framing import ShardWriter
    from imgrec.format.schema import Objects

    objects = Objects(xmin=(0.1,), ymin=(0.1,), xmax=(0.5,), ymax=(0.5,), label=(1,),
                      keypointed=True, keypoint_x=(0.2, 0.3), keypoint_y=(0.2,),
                      keypoint_visibility=(2, 2))  # fmt: skip
    outside = replace(objects, keypoint_y=(0.2, 0.3), keypoint_x=(0.2, 1.5))
    with ShardWriter(tmp_path / "x.tfrecord") as w:
        for o in (objects, outside):
            w.write(schema.serialize(replace(jpeg_record("a.jpg", jpeg(1)), objects=o)))
    r = run("verify", tmp_path / "x.tfrecord")
    assert r.exit_code == 1
    said = r.output + r.stderr
    assert "the keypoint lists differ in length" in said
    assert "object 0's keypoint 1 (x 1.5, y 0.3" in said and "not inside [0, 1]" in said


@slow
def test_tfds_reads_the_keypoint_features(drawn, tmp_path):
    import tensorflow_datasets as tfds

    root, pictured, ann = drawn
    pack(root / "images", tmp_path / "out", PackOptions(annotations=str(ann)))
    assert run("tfds", tmp_path / "out").exit_code == 0
    ds = tfds.builder_from_directory(str(tmp_path / "out")).as_dataset(split="train")
    for ex in tfds.as_numpy(ds):
        n = len(ex[schema.OBJECT_LABEL])
        assert ex[schema.KEYPOINT_X].shape == ex[schema.KEYPOINT_VISIBILITY].shape == (3 * n,)
        assert len(ex[schema.KEYPOINT_NUM]) == n and len(ex[schema.KEYPOINT_TEXT]) == 3 * n


def test_a_flip_swaps_the_slots_of_left_and_right_names_only():
    from imgrec.reading.objects import flip_order

    coco = ["nose", "left_eye", "right_eye", "Left Ear", "Right Ear", "leftfoot", "rightfoot"]
    assert flip_order({1: coco}) == (0, 2, 1, 4, 3, 6, 5)
    assert flip_order({1: NAMES}) is None
    assert flip_order({1: PAIRED, 2: ["right_eye", "left_eye", "nose"]}) == (1, 0, 2)
    assert flip_order({1: PAIRED, 2: ["nose", "left_eye", "right_eye"]}) is None
    assert flip_order({1: PAIRED, 2: ["a"]}) is None  # classes would swap differently


def test_keypoints_travel_with_their_box_and_leave_other_datasets_as_they_were():
    from imgrec.packing.annotations import Annotated, PixelBox

    box = PixelBox(1, 2, 3, 4, 1, "annotation id 5", points=(1.5, 2.5, 2.0, 0.0, 0.0, 0.0))
    with_points = Annotated((box,), 8, 8, "1", "k.json", keypoints=3,
                            keypoint_names=((1, ("a", "b", "c")),))  # fmt: skip
    assert Annotated.from_json(json.loads(json.dumps(with_points.to_json()))) == with_points
    plain = Annotated((PixelBox(1, 2, 3, 4, 1, "annotation id 5"),), 8, 8, "1", "k.json")
    form = plain.to_json()
    assert len(form) == 10 and len(form[0][0]) == 11  # the form (and digest) of before
    assert Annotated.from_json(form) == plain


@pytest.mark.parametrize("opts", [
    {"size": (64, 96), "mode": "stretch"}, {"size": (64, 96), "mode": "fit"},
    {"size": (64, 96), "mode": "fill"}, {"size": (64, 96), "mode": "pad"}, {"max_side": 50},
])  # fmt: skip
def test_points_move_as_box_corners(opts):
    from imgrec.images import geometry
    from imgrec.images.pixels import Resize

    resize = Resize(**opts)
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, 1, (40, 2, 2)), axis=1)  # x0 < x1, y0 < y1
    boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    moved, kept, _ = geometry.resized_boxes(boxes, 120, 150, resize)
    points, inside = geometry.resized_points(boxes.reshape(-1, 2), 120, 150, resize)
    both = inside.reshape(-1, 2).all(axis=1)
    assert both[kept].any()
    np.testing.assert_allclose(points.reshape(-1, 4)[kept][both[kept]], moved[both[kept]])
    if opts.get("mode") != "fill":
        assert inside.all()
