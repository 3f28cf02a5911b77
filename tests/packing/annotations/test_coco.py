"""COCO JSON files read into ``Annotated`` per image: boxes as the file gives them, the
file's problems as one-line errors, each annotation's as its image's problem."""

from __future__ import annotations

import json
import math
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imgrec.core.errors import InputError
from imgrec.packing.annotations import Annotated, PixelBox
from imgrec.packing.annotations.coco import read
from imgrec.packing.annotations.coco_checks import rle_counts, rle_mask

mask = pytest.importorskip("pycocotools.mask")


def _rle(m: np.ndarray) -> dict[str, Any]:
    rle = mask.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def _coco() -> dict[str, Any]:
    """A file as COCO's tools write it: polygons, both run-length forms, keypoints, a crowd,
    sparse category ids, and an image without annotations."""
    square = np.zeros((4, 6), np.uint8)
    square[1:3, 2:5] = 1
    return {
        "info": {"description": "test"},
        "images": [
            {"id": 1, "file_name": "a/one.jpg", "width": 6, "height": 4},
            {"id": 7, "file_name": "./two.jpg", "width": 6, "height": 4},
            {"id": 9, "file_name": "empty.jpg", "width": 8, "height": 8},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 90, "bbox": [1, 1.5, 2, 2], "area": 4,
             "iscrowd": 0, "segmentation": [[1, 1.5, 3, 1.5, 3, 3.5]]},
            {"id": 11, "image_id": 7, "category_id": 1, "bbox": [2, 1, 3, 2], "area": 6.0,
             "iscrowd": 1, "segmentation": _rle(square)},
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 6, 4], "area": 24,
             "iscrowd": 1, "segmentation": {"size": [4, 6], "counts": [6, 12, 6]}},
            {"id": 13, "image_id": 7, "category_id": 1, "bbox": [0.5, 0, 1, 1], "area": 1,
             "iscrowd": 0, "keypoints": [1, 0.5, 2, 0, 0, 0], "num_keypoints": 1},
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": ["nose", "eye"]},
            {"id": 90, "name": "toothbrush"},
        ],
    }  # fmt: skip


def _write(tmp_path: Path, data: Any, name: str = "instances.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _one(tmp_path: Path, data: Any) -> Any:
    return read(_write(tmp_path, data), tmp_path)


def test_lookup_gives_each_images_boxes_in_file_order(tmp_path):
    path = _write(tmp_path, _coco())
    source = read(path, tmp_path)
    where = str(path)
    assert (source.kind, source.where) == ("coco", where)
    assert source.classes == {1: "person", 90: "toothbrush"}
    square = json.dumps(_coco()["annotations"][1]["segmentation"], separators=(",", ":"))
    assert source.lookup("a/one.jpg") == Annotated(
        (
            PixelBox(1.0, 1.5, 3.0, 3.5, 90, "annotation id 10", 4.0,
                     shape="[[1,1.5,3,1.5,3,3.5]]"),
            PixelBox(0.0, 0.0, 6.0, 4.0, 1, "annotation id 12", 24.0, crowd=True,
                     shape='{"size":[4,6],"counts":[6,12,6]}'),
        ),
        6, 4, "1", where, masked=True,
    )  # fmt: skip
    assert source.lookup("two.jpg") == Annotated(
        (
            PixelBox(2.0, 1.0, 5.0, 3.0, 1, "annotation id 11", 6.0, crowd=True, shape=square),
            # keypoints at their pixels' centres; the unlabelled one left at 0, 0
            PixelBox(0.5, 0.0, 1.5, 1.0, 1, "annotation id 13", 1.0,
                     points=(1.5, 1.0, 2.0, 0.0, 0.0, 0.0)),
        ),
        6, 4, "7", where, masked=True,
    )  # fmt: skip
    assert source.lookup("./two.jpg") == source.lookup("two.jpg")
    assert source.lookup("empty.jpg") == Annotated((), 8, 8, "9", where, masked=True)
    assert source.lookup("not/listed.jpg") is None
    assert list(source.listed()) == ["a/one.jpg", "empty.jpg", "two.jpg"]
    assert source.keypoints == {1: ("nose", "eye")}
    # segmentations are packed (an object without one gets its box), keypoints too
    assert source.masked
    assert source.warnings == [
        "1 of 4 annotations have no segmentation: their instance masks are their boxes, filled",
    ]
    source.close()
    assert [p.name for p in tmp_path.iterdir()] == ["instances.json"]


def test_annotations_before_images_and_categories(tmp_path):
    data = _coco()
    reordered = {k: data[k] for k in ("annotations", "categories", "info", "images")}
    first, second = (
        read(_write(tmp_path, data), tmp_path),
        read(_write(tmp_path, reordered, "r.json"), tmp_path),
    )
    for name in ("a/one.jpg", "two.jpg", "empty.jpg"):
        a, b = first.lookup(name), second.lookup(name)
        assert a is not None and b is not None and (a.boxes, a.source_id) == (b.boxes, b.source_id)
    first.close()
    second.close()


def _child(source: Any, queue: Any) -> None:
    found = source.lookup("a/one.jpg")
    queue.put(None if found is None else found.to_json())


def test_lookup_in_a_forked_child_after_the_parent_used_it(tmp_path):
    source = read(_write(tmp_path, _coco()), tmp_path)
    expected = source.lookup("a/one.jpg")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(source, queue))
    child.start()
    got = queue.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert expected is not None and Annotated.from_json(got) == expected
    assert source.lookup("two.jpg") is not None  # the parent's connection still works
    source.close()


# pycocotools' decode, built against NumPy 1, warns under NumPy 2; not ours to fix.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_rle_decoding_matches_pycocotools():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (17, 9), (40, 60), (64, 64)]:
        for density in (0.0, 0.1, 0.5, 0.97, 1.0):
            m = (rng.random(shape) < density).astype(np.uint8)
            if density == 0.5:  # blobs, for long runs too
                m[: shape[0] // 2, : shape[1] // 3] = 1
            encoded = mask.encode(np.asfortranarray(m))
            counts = rle_counts(encoded["counts"].decode())
            assert np.array_equal(rle_mask(counts, *shape), mask.decode(encoded))
            assert np.array_equal(rle_mask(counts, *shape), m)


def test_rle_counts_refuses_what_is_not_compressed_rle():
    for text in ["0\x7f", "o", "6 ", "\u00e9"]:
        with pytest.raises(ValueError):
            rle_counts(text)
    assert rle_counts("") == []
    with pytest.raises(ValueError, match="cover"):
        rle_mask([1, 2], 2, 2)


def test_python_nan_and_infinity_in_a_bbox_skip_only_that_image(tmp_path):
    data = _coco()
    data["annotations"][0]["bbox"] = [math.nan, 1, 2, 2]
    data["annotations"][1]["bbox"] = [1, 1, math.inf, 2]
    data["images"][2]["file_name"] = "NaN, Infinity.jpg"  # in a string: left as it is
    source = _one(tmp_path, data)  # json.dumps writes NaN and Infinity
    one, two = source.lookup("a/one.jpg"), source.lookup("two.jpg")
    assert one.problem == (
        f"{tmp_path / 'instances.json'}: annotation id 10: bbox [NaN, 1, 2, 2] has a NaN or"
        " infinite number; correct or remove it"
    )
    assert one.boxes == () and one.source_id == "1"
    assert "annotation id 11: bbox [1, 1, Infinity, 2] has a NaN or infinite" in two.problem
    assert source.lookup("NaN, Infinity.jpg") == Annotated((), 8, 8, "9", source.where, masked=True)
    source.close()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"bbox": [1, 1, 0, 2]}, "bbox [1, 1, 0, 2] has a width or height of 0 or less"),
        ({"bbox": [1, 1, 2, -1]}, "bbox [1, 1, 2, -1] has a width or height of 0 or less"),
        ({"bbox": [1, 1, 2]}, "bbox [1, 1, 2] is not 4 numbers"),
        ({"bbox": [1, 1, "2", 2]}, "bbox [1, 1, '2', 2] is not 4 numbers"),
        ({"category_id": 5}, "category_id 5 is not one of the ids in 'categories'"),
        ({"segmentation": [[1, 1, 2, 2]]}, "polygon 1 of its segmentation is [1, 1, 2, 2], not"),
        ({"segmentation": [[1, 1, 2, 2, 3, 3, 4]]}, "polygon 1 of its segmentation is"),
        (
            {"segmentation": {"size": [4, 6], "counts": [6, 12, 5]}},
            "covers 23 pixels, not its size 4 x 6",
        ),
        ({"segmentation": {"size": [4, 6], "counts": "0\x7f"}}, "not COCO's compressed form"),
        (
            {"segmentation": {"size": [4, 6], "counts": "0P"}},
            "compressed form: it ends inside a number",
        ),
        (
            {"segmentation": {"size": [5, 6], "counts": [30]}},
            "size [height, width] is [5, 6], not the image's [4, 6]",
        ),
        ({"keypoints": [1, 2, 2, 3]}, "keypoints [1, 2, 2, 3] are not x, y, v triples"),
        (
            {"keypoints": [1, 2, 3, 0, 0, 0]},
            "keypoint 1 is [1, 2, 3]: x and y must be numbers and v 0, 1 or 2",
        ),
        ({"keypoints": [1, 2, 2]}, "it has 1 keypoints where its category names 2"),
        ({"iscrowd": 2}, "iscrowd is 2, not 0 or 1"),
        ({"area": -1}, "area is -1, not a number of pixels"),
    ],
)  # fmt: skip
def test_an_annotations_problem_skips_its_image_naming_the_file_and_id(tmp_path, change, said):
    data = _coco()
    data["annotations"][3].update(change)  # id 13, of image 7 (two.jpg), category 1
    source = _one(tmp_path, data)
    found = source.lookup("two.jpg")
    assert found.problem.startswith(f"{tmp_path / 'instances.json'}: annotation id 13: ")
    assert said in found.problem and found.problem.endswith("; correct or remove it")
    assert source.lookup("a/one.jpg").problem is None
    source.close()


def test_nan_in_keypoints_and_polygons(tmp_path):
    data = _coco()
    data["annotations"][3]["keypoints"] = [1, math.nan, 2, 0, 0, 0]
    data["annotations"][0]["segmentation"] = [[1, 1, 2, math.nan, 3, 3]]
    source = _one(tmp_path, data)
    assert "annotation id 13: keypoint 1 is [1, NaN, 2]" in source.lookup("two.jpg").problem
    assert (
        "annotation id 10: polygon 1 of its segmentation has a NaN"
        in source.lookup("a/one.jpg").problem
    )
    source.close()


def _refused(tmp_path: Path, data: Any) -> str:
    folder = tmp_path / "refused"
    folder.mkdir(exist_ok=True)
    path = folder / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(InputError) as e:
        read(path, folder)
    assert e.value.path == str(path)
    assert [p.name for p in folder.iterdir()] == ["bad.json"]  # no index left behind
    return str(e.value).removeprefix(f"{path}: ")


def test_not_json_names_the_byte_and_line(tmp_path):
    text = json.dumps(_coco(), indent=1)
    at = text.index('"annotations"')
    said = _refused(tmp_path, text[:at] + "x" + text[at:])
    line = text[:at].count("\n") + 1
    assert said.startswith(f"is not valid JSON at byte {at} (line {line}): ")
    assert _refused(tmp_path, text[:-40]).startswith("is not valid JSON at its end")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d.pop("images"), "has no 'images' array"),
        (lambda d: d.pop("annotations"), "has no 'annotations' array"),
        (lambda d: d.pop("categories"), "has annotations but no 'categories' array"),
        (lambda d: d.update(images={"id": 1}), "'images' is not an array"),
        (
            lambda d: d["images"][1].update(id=1),
            'image id 1 is listed twice, as image id 1 "a/one.jpg" and image id 1 "two.jpg"'
            " (an image annotated twice or listed twice)",
        ),
        (
            lambda d: d["images"][1].update(file_name="a/one.jpg"),
            '"a/one.jpg" is listed twice, as image id 1 "a/one.jpg" and image id 7 "a/one.jpg"',
        ),
        (
            lambda d: d["annotations"][2].update(image_id=3),
            "annotation id 12 is of image id 3, which 'images' does not list",
        ),
        (
            lambda d: d["categories"].append({"id": 90, "name": "brush"}),
            'category id 90 is listed twice, as "toothbrush" and "brush"',
        ),
        (lambda d: d["categories"][0].update(id=-1), 'category id -1 ("'),  # padding's id
        (lambda d: d["categories"][0].update(id=10**12), 'category id 1000000000000 ("'),
        (lambda d: d["annotations"][1].pop("id"), "annotation number 2 has no integer 'id'"),
        (lambda d: d["images"][0].pop("file_name"), "image id 1 has no 'file_name'"),
    ],
)  # fmt: skip
def test_a_file_level_problem_is_one_input_error(tmp_path, change, said):
    data = _coco()
    change(data)
    assert _refused(tmp_path, data).startswith(said)


def test_a_results_file_is_not_a_dataset(tmp_path):
    assert "COCO results file" in _refused(tmp_path, _coco()["annotations"])


def test_no_annotations_at_all_is_every_image_negative(tmp_path):
    data = _coco()
    data["annotations"] = []
    del data["categories"]
    source = _one(tmp_path, data)
    assert source.lookup("a/one.jpg") == Annotated((), 6, 4, "1", source.where)
    assert source.classes == {} and source.warnings == []
    source.close()


@pytest.mark.parametrize("block", [7, 64])
def test_nan_tokens_and_errors_across_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr("imgrec.packing.annotations.json_stream.BLOCK", block)
    data = _coco()
    data["info"]["description"] = 'say \\"NaN\\", -Infinity'  # escaped quotes around tokens
    data["annotations"][0]["bbox"] = [1, 1, 2, -math.inf]
    data["annotations"][1]["area"] = math.nan
    source = _one(tmp_path, data)
    assert "bbox [1, 1, 2, -Infinity] has a NaN" in source.lookup("a/one.jpg").problem
    assert "annotation id 11: area is NaN" in source.lookup("two.jpg").problem
    source.close()
    text = json.dumps(_coco())
    at = text.index('"categories"')
    said = _refused(tmp_path, text[:at] + "]" + text[at:])
    assert said.startswith(f"is not valid JSON at byte {at} (line 1): ")
