"""TFDS metadata: ``tfds.builder_from_directory(OUT)`` reads imgrec's shards as they are.

The fast tests check the files themselves (no TensorFlow); the slow ones load datasets with
the installed tensorflow-datasets and compare every image, label and split with
``imgrec.dataset``.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import make_tree, run, smooth_rgb
from PIL import Image

import imgrec
from imgrec import InputError, PackOptions
from imgrec.core.storage import Folder
from imgrec.format import schema
from imgrec.format.framing import read_records
from imgrec.format.manifest import read_manifest
from imgrec.packing.tfds import FEATURES, INFO, LABEL_NAMES, write_metadata

# The fields of tensorflow-datasets 4.6.0's dataset_info.proto and feature.proto (JSON
# names), the oldest release that reads filepathTemplate: TFDS parses strictly, so a field
# outside these breaks every release from 4.6.0 on that does not know it.
INFO_4_6 = {"name", "description", "version", "releaseNotes", "configName",
            "configDescription", "features", "citation", "sizeInBytes", "downloadSize",
            "location", "downloadChecksums", "schema", "splits", "supervisedKeys",
            "redistributionInfo", "moduleName", "disableShuffling", "fileFormat"}  # fmt: skip


SPLIT_4_6 = {"name", "numShards", "shardLengths", "numBytes", "statistics", "filepathTemplate"}


SUPERVISED_4_6 = {"input", "output", "tuple"}


FEATURE_4_6 = {"pythonClassName", "description", "valueRange", "jsonFeature", "featuresDict",
               "tensor", "classLabel", "image", "video", "audio", "boundingBox", "text",
               "translation", "sequence", "scalar"}  # fmt: skip


CONTENT_4_6 = {
    "featuresDict": {"features"},
    "tensor": {"shape", "dtype", "encoding"},
    "classLabel": {"numClasses"},
    "image": {"shape", "dtype", "encodingFormat", "useColormap", "label"},
    "text": set(),
}


# EXIF orientation -> the Pillow transpose that applies it.
ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}  # fmt: skip


def packed(src: Path, out: Path, *options: str) -> dict[str, Any]:
    """``imgrec pack SRC OUT OPTIONS``, then ``imgrec tfds OUT``; the manifest as a dict."""
    result = run("pack", src, out, "-q", *options)
    assert result.exit_code == 0, result.output
    result = run("tfds", out)
    assert result.exit_code == 0, result.output
    return read_manifest(out).to_dict()


def rgb_tree(root: Path, rotated: int | None = None) -> Path:
    """Two classes of RGB images, PNG and JPEG, of a few sizes (one JPEG with an EXIF
    orientation when ``rotated`` is given)."""
    for i in range(8):
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(smooth_rgb(20 + i % 3, 28, i))
        if i % 4 == 1:
            im.save(folder / f"im{i}.jpg", quality=90)
        else:
            im.save(folder / f"im{i}.png")
    if rotated is not None:
        exif = Image.Exif()
        exif[0x0112] = rotated
        Image.fromarray(smooth_rgb(16, 24, 9)).save(
            root / "a" / "rotated.jpg", quality=95, exif=exif.tobytes()
        )
    return root


def builder(out: Path) -> Any:
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(str(out))


def examples(out: Path, split: str = "train", **kwargs: Any) -> list[Any]:
    import tensorflow_datasets as tfds

    return list(tfds.as_numpy(builder(out).as_dataset(split=split, **kwargs)))


def imgrec_images(out: Path, split: str | None = None) -> dict[str, tuple[np.ndarray, int]]:
    """imgrec.dataset's images (floats in [0, 1]) and labels, by file name."""
    ds = imgrec.dataset(out, with_filenames=True, split=split, device="cpu")
    return {fn.numpy().decode(): (im.numpy(), int(lab)) for im, lab, fn in ds}


def orientations(out: Path) -> dict[str, int]:
    return {
        r.filename: r.orientation
        for shard in sorted(out.glob("*.tfrecord"))
        for _, data in read_records(shard)
        for r in [schema.parse(data)]
    }


def as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / np.iinfo(image.dtype).max


def levels(ex: dict[str, Any]) -> np.ndarray:
    """The TFDS image in its record's own dtype: an 8-bit image in a dataset with 16-bit
    ones is decoded to uint16 as TensorFlow does it (PNG x257, JPEG x256)."""
    image = ex["image/encoded"] if "image/encoded" in ex else ex["image/raw"]
    if ex["image/dtype"] == b"uint8" and image.dtype == np.uint16:
        scale = 256 if ex["image/format"] == b"jpeg" else 257
        assert not (image % scale).any()
        return (image // scale).astype(np.uint8)
    return image


def check_images(out: Path, found: list[dict[str, Any]], split: str | None = None) -> None:
    """Every TFDS example is imgrec.dataset's image and label. PNG and raw pixels are equal.
    JPEGs are decoded by TFDS with TensorFlow's default DCT (INTEGER_FAST), imgrec's with
    INTEGER_ACCURATE (a few levels apart): both are checked exactly, the second on the bytes
    TFDS gives with SkipDecoding. An EXIF orientation, which TFDS does not apply, is
    applied here. ``split``: the dataset's, or None for one packed without --split."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    want, turns = imgrec_images(out, split), orientations(out)
    assert sorted(ex["image/filename"].decode() for ex in found) == sorted(want)
    encoded: dict[str, bytes] = {}
    if "image/encoded" in found[0]:
        skip = {"image/encoded": tfds.decode.SkipDecoding()}
        for ex in examples(out, split or "train", decoders=skip):
            encoded[ex["image/filename"].decode()] = ex["image/encoded"]
        channels = builder(out).info.features["image/encoded"].shape[-1] or 0
    for ex in found:
        name = ex["image/filename"].decode()
        image, label = want[name]
        assert ex["image/class/label"] == label
        got = levels(ex)
        if ex["image/format"] == b"jpeg":
            decode = functools.partial(tf.io.decode_jpeg, encoded[name], channels)
            assert np.array_equal(got, decode().numpy())
            got = decode(dct_method="INTEGER_ACCURATE").numpy()
        if turns[name] != 1:
            assert got.shape[:2] == image.shape[1::-1]  # stored as the camera wrote it
            got = np.asarray(Image.fromarray(got).transpose(ORIENT[turns[name]]))
        assert got.shape == image.shape, name
        np.testing.assert_allclose(as_float(got), image, atol=1e-6, err_msg=name)


def walk_features(feature: dict[str, Any]) -> None:
    """Every feature in features.json uses only fields TFDS 4.6.0 knows."""
    assert set(feature) <= FEATURE_4_6, set(feature) - FEATURE_4_6
    (kind,) = set(feature) - {"pythonClassName", "description"}
    assert set(feature[kind]) <= CONTENT_4_6[kind]
    for child in feature[kind].get("features", {}).values():
        walk_features(child)


def test_files_hold_only_what_tfds_4_6_reads_and_the_manifests_numbers(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    m = imgrec.pack(src, out, PackOptions(shards=3))
    assert write_metadata(Folder(out), m) == [INFO, FEATURES, LABEL_NAMES]
    info = json.loads((out / INFO).read_text())
    assert set(info) <= INFO_4_6 and set(info["supervisedKeys"]) <= SUPERVISED_4_6
    (split,) = info["splits"]
    assert set(split) <= SPLIT_4_6
    assert split["name"] == "train"
    assert split["shardLengths"] == [str(s.records) for s in m.shards]
    assert split["numBytes"] == str(sum(s.bytes for s in m.shards))
    assert split["filepathTemplate"] == "data-{SHARD_X_OF_Y}.tfrecord"
    for s in m.shards:  # the names TFDS makes from the template are the shards' own
        index, count = s.file.removeprefix("data-").removesuffix(".tfrecord").split("-of-")
        assert s.file == f"data-{int(index):05d}-of-{int(count):05d}.tfrecord"
        assert (out / s.file).stat().st_size == s.bytes
    features = json.loads((out / FEATURES).read_text())
    walk_features(features)
    keys = set(features["featuresDict"]["features"])
    assert keys == {schema.ENCODED, schema.FORMAT, schema.HEIGHT, schema.WIDTH, schema.CHANNELS,
                    schema.SHAPE, schema.DTYPE, schema.LABEL, schema.TEXT, schema.FILENAME,
                    schema.SHA256}  # fmt: skip
    assert (out / LABEL_NAMES).read_text() == "cat\ndog\nfish\n"
    assert not list(out.glob(".*.incomplete"))


def test_importing_it_imports_neither_tensorflow_nor_tfds():
    heavy = "{'tensorflow', 'tensorflow_datasets'}"
    code = f"import sys, imgrec.packing.tfds; assert not {heavy} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_dataset_tfds_cannot_read_is_refused_and_loses_its_old_metadata(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    m = imgrec.pack(src, out)
    folder = Folder(out)
    write_metadata(folder, m)
    assert m.stats is not None
    mixed = replace(m.stats, formats=m.stats.formats + type(m.stats.formats)(raw=1))
    with pytest.raises(InputError, match="some records are encoded and some raw"):
        write_metadata(folder, replace(m, stats=mixed))
    assert not {INFO, FEATURES, LABEL_NAMES} & set(folder.files())
    badly_named = [replace(s, split="a.b") for s in m.shards]
    with pytest.raises(InputError, match="split 'a.b'"):
        write_metadata(folder, replace(m, shards=badly_named))
    renamed = [replace(s, file="data.tfrecord") for s in m.shards]
    with pytest.raises(InputError, match="not named"):
        write_metadata(folder, replace(m, shards=renamed))


def test_a_dataset_of_no_records_is_refused_in_one_line_naming_why(tree, tmp_path):
    src, files = tree
    only = tmp_path / "skipped" / "cat"
    only.mkdir(parents=True)
    data = files["cat0"].read_bytes()
    (only / "cut.png").write_bytes(data[: len(data) // 2])  # a header, then nothing to load
    out = tmp_path / "out"
    assert run("pack", only.parent, out, "-q").exit_code == 0  # pack skips it, exit 0
    assert read_manifest(out).records == 0
    r = run("tfds", out)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
    assert r.stderr.startswith("Error: the dataset has no records (manifest.json lists what"
                               " was skipped and why)"), r.stderr  # fmt: skip
    assert not {INFO, FEATURES, LABEL_NAMES} & set(Folder(out).files())


def test_odd_class_names_read_back_one_a_line(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    m = imgrec.pack(src, out)
    write_metadata(Folder(out), replace(m, labels=[" spaced ", "two\nlines", "", "spaced"]))
    assert (out / LABEL_NAMES).read_text() == "spaced\ntwo lines\nclass 2\nspaced (3)\n"


def test_class_names_written_once_each(tree, tmp_path):
    # Their speed with many classes (once quadratic) is benchmarks/many_classes.py's.
    src, _ = tree
    out = tmp_path / "out"
    m = imgrec.pack(src, out)
    names = [f"class{i}" for i in range(300)] + ["class7"]
    write_metadata(Folder(out), replace(m, labels=names))
    assert (out / LABEL_NAMES).read_text().splitlines()[-1] == "class7 (300)"


def test_cli_prints_what_it_wrote_and_refuses_a_folder_without_manifest(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    imgrec.pack(src, out)
    r = run("tfds", out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "out": str(out),
        "written": [str(out / INFO), str(out / FEATURES), str(out / LABEL_NAMES)],
    }
    assert run("tfds", out).stdout == "".join(
        f"Wrote {out / name}\n" for name in (INFO, FEATURES, LABEL_NAMES)
    )
    r = run("tfds", tmp_path)
    assert r.exit_code == 1 and "no manifest.json here" in r.stderr
    assert run("verify", out).exit_code == 0  # the metadata files are no shard's business


@pytest.mark.slow
def test_tree_loads_with_imgrecs_images_labels_names_and_split(tree, tmp_path):
    """Gray, RGB, RGBA, 16-bit gray and GIF (transcoded) images, and one without a class."""
    src, _ = tree
    out = tmp_path / "out"
    m = packed(src, out, "--shards", "2")
    b = builder(out)
    assert list(b.info.splits) == ["train"]
    assert b.info.splits["train"].num_examples == m["records"] == 13
    assert b.info.splits["train"].shard_lengths == [s["records"] for s in m["shards"]]
    assert b.info.features["image/class/label"].names == m["labels"] == ["cat", "dog", "fish"]
    found = examples(out)
    assert len(found) == 13
    check_images(out, found)
    assert {ex["image/encoded"].dtype for ex in found} == {np.dtype(np.uint16)}
    assert -1 in {ex["image/class/label"] for ex in found}  # loose.png, in SRC itself

    half = examples(out, "train[:50%]")
    assert 6 <= len(half) <= 7
    assert [ex["image/filename"] for ex in half] == [ex["image/filename"] for ex in found][
        : len(half)
    ]
    pairs = examples(out, as_supervised=True)
    assert [(len(p), int(p[1])) for p in pairs] == [(2, ex["image/class/label"]) for ex in found]
    assert all(
        np.array_equal(p[0], ex["image/encoded"]) for p, ex in zip(pairs, found, strict=True)
    )


@pytest.mark.slow
def test_rgb_dataset_batches_and_keeps_jpeg_orientation_as_stored(tmp_path):
    src = rgb_tree(tmp_path / "src", rotated=6)
    out = tmp_path / "out"
    m = packed(src, out)
    assert m["stats"]["oriented"] == 1
    b = builder(out)
    assert b.info.features["image/encoded"].shape == (None, None, 3)
    assert b.info.features["image/class/label"].names == ["a", "b"]
    assert "1 JPEG(s) carry an EXIF orientation" in b.info.description
    check_images(out, examples(out))

    fixed = tmp_path / "fixed"
    packed(src, fixed, "--resize", "12x10")
    assert builder(fixed).info.features["image/encoded"].shape == (10, 12, 3)
    batches = examples(fixed, batch_size=4, as_supervised=True)
    assert [images.shape for images, _ in batches] == [(4, 10, 12, 3)] * 2 + [(1, 10, 12, 3)]
    check_images(fixed, examples(fixed))


@pytest.mark.slow
def test_fixed_size_raw_loads_as_a_tensor(tmp_path):
    src = rgb_tree(tmp_path / "src")
    out = tmp_path / "out"
    packed(src, out, "--format", "raw", "--resize", "8x8")
    b = builder(out)
    feature = b.info.features["image/raw"]
    assert (feature.shape, np.dtype(feature.np_dtype)) == ((8, 8, 3), np.uint8)
    found = examples(out)
    assert all(ex["image/raw"].shape == (8, 8, 3) for ex in found)
    check_images(out, found)
    images, labels = examples(out, batch_size=8, as_supervised=True)[0]
    assert images.shape == (8, 8, 8, 3) and list(labels) == [
        ex["image/class/label"] for ex in found
    ]


@pytest.mark.slow
def test_variable_size_raw_loads_as_bytes_and_shape_with_the_documented_decode(tree, tmp_path):
    import tensorflow as tf

    src, _ = tree
    out = tmp_path / "out"
    packed(src, out, "--format", "raw")
    b = builder(out)
    assert b.info.supervised_keys is None
    assert "np.frombuffer(" in b.info.features["image/raw"].doc.desc
    want = imgrec_images(out)
    found = examples(out)
    assert len(found) == len(want) == 13
    for ex in found:  # the line in docs/commands.md, for a dataset of several dtypes
        image = np.frombuffer(ex["image/raw"], ex["image/dtype"].decode()).reshape(
            ex["image/shape"]
        )
        np.testing.assert_allclose(as_float(image), want[ex["image/filename"].decode()][0])
    # One dtype: TensorFlow's own line, inside the pipeline.
    rgb = rgb_tree(tmp_path / "rgb")
    packed(rgb, tmp_path / "rgb-raw", "--format", "raw")
    ds = builder(tmp_path / "rgb-raw").as_dataset(split="train")
    ds = ds.map(
        lambda ex: tf.reshape(tf.io.decode_raw(ex["image/raw"], tf.uint8), ex["image/shape"])
    )
    want = imgrec_images(tmp_path / "rgb-raw")
    assert sorted(im.shape for im in ds.as_numpy_iterator()) == sorted(
        im.shape for im, _ in want.values()
    )


@pytest.mark.slow
def test_split_dataset_has_exact_split_sizes_and_images(tmp_path):
    src = tmp_path / "src"
    make_tree(src, per_class=6)
    out = tmp_path / "out"
    m = packed(src, out, "--split", "train=0.5,val=0.25,test=0.25", "--shards", "4")
    b = builder(out)
    assert list(b.info.splits) == ["train", "val", "test"]
    for name, split in m["splits"].items():
        assert b.info.splits[name].num_examples == split["records"]
        shards = [s for s in m["shards"] if s["split"] == name]
        assert b.info.splits[name].shard_lengths == [s["records"] for s in shards]
        assert b.info.splits[name].num_bytes == sum(s["bytes"] for s in shards)
        found = examples(out, name)
        assert len(found) == split["records"]
        check_images(out, found, name)
    half = len(examples(out, "train[:50%]"))
    assert 0 < half < m["splits"]["train"]["records"]
    assert len(examples(out, "train[:50%]+test")) == half + m["splits"]["test"]["records"]


@pytest.mark.slow
def test_objects_and_fields_load_through_tfds_as_the_records_hold_them(tmp_path):
    from annotated import draw, write_coco

    src = tmp_path / "src"
    drawn = draw(src, count=5, negatives=1)
    rows = [{"file_name": d.rel, "caption": d.rel.upper(), "emb": [1.0] * (i + 1)}
            for i, d in enumerate(drawn)]  # fmt: skip
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ann = write_coco(drawn, tmp_path / "instances.json")
    packed(src, tmp_path / "out", "--annotations", str(ann))
    features = builder(tmp_path / "out").info.features
    assert schema.XMIN in features and schema.FIELD + "caption" in features
    found = {ex["image/filename"].decode(): ex for ex in examples(tmp_path / "out")}
    assert len(found) == len(drawn)
    for i, d in enumerate(drawn):
        ex = found[d.rel]
        xs = sorted(zip(ex[schema.XMIN] * d.width, ex[schema.XMAX] * d.width, strict=True))
        assert np.allclose(xs, sorted((x0, x1) for x0, _, x1, _, _ in d.boxes), atol=1e-3)
        assert list(ex[schema.OBJECT_LABEL]) == [1 + c for *_, c in d.boxes]
        assert ex[schema.FIELD + "caption"].decode() == d.rel.upper()
        assert list(ex[schema.FIELD + "emb"]) == [1.0] * (i + 1)
