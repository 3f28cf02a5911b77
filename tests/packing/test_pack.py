"""Library-level tests of packing: what lands in the shards and the manifest."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgrec import InputError, OutputError, PackOptions, pack
from imgrec.format.framing import read_records
from imgrec.format.schema import Record, parse
from imgrec.packing.discover import from_list, read_labels_file


def records(out: Path) -> list[Record]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [
        parse(data)
        for shard in manifest["shards"]
        for _offset, data in read_records(out / shard["file"])
    ]


def by_name(out: Path) -> dict[str, Record]:
    return {r.filename: r for r in records(out)}


def test_encoded_keeps_jpeg_and_png_bytes(shared_tree, packed_tree):
    src, files = shared_tree
    out, _ = packed_tree()
    recs = by_name(out)
    for key in ("cat0", "cat1", "dog2", "gray16", "alpha"):
        rel = files[key].relative_to(src).as_posix()
        assert recs[rel].data == files[key].read_bytes(), key
    assert recs["cat/cat1.jpg"].format == "jpeg"
    assert recs["cat/deep.png"].dtype == "uint16"
    assert recs["dog/alpha.png"].channels == 4
    assert recs["dog/dog2.png"].channels == 1
    # A GIF is transcoded to PNG, losslessly, and the manifest says so.
    gif = recs["fish/anim.gif"]
    assert gif.format == "png"
    with Image.open(files["gif"]) as im:
        expected = np.asarray(im.convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(gif.data))), expected)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [t["path"] for t in manifest["transcoded"]] == ["fish/anim.gif"]


def test_labels_filenames_and_hashes(shared_tree, packed_tree):
    src, files = shared_tree
    out, manifest = packed_tree()
    assert manifest["labels"] == ["cat", "dog", "fish"]
    recs = by_name(out)
    assert recs["dog/dog1.jpg"].label == 1 and recs["dog/dog1.jpg"].text == "dog"
    assert recs["loose.png"].label == -1 and recs["loose.png"].text == ""
    for rel, rec in recs.items():
        assert rec.sha256 == hashlib.sha256((src / rel).read_bytes()).hexdigest()
    assert manifest["ignored"] == 1  # notes.txt
    assert manifest["records"] == len(recs) == 13


def test_raw_equals_pillow_pixels(shared_tree, packed_tree):
    src, files = shared_tree
    out, _ = packed_tree(format="raw")
    recs = by_name(out)
    for key in ("cat0", "cat1", "dog2", "fish0"):
        rec = recs[files[key].relative_to(src).as_posix()]
        with Image.open(files[key]) as im:
            expected = np.asarray(im)
        expected = expected[..., None] if expected.ndim == 2 else expected
        got = np.frombuffer(rec.data, rec.dtype).reshape(rec.height, rec.width, rec.channels)
        assert rec.format == "raw"
        assert np.array_equal(got, expected), key
    deep = recs["cat/deep.png"]
    assert deep.dtype == "uint16"
    got = np.frombuffer(deep.data, np.uint16).reshape(deep.height, deep.width)
    with Image.open(files["gray16"]) as im:
        assert np.array_equal(got, np.asarray(im).astype(np.uint16))
    assert got.max() > 255  # really 16-bit, not scaled down


def test_two_packs_are_byte_identical_whatever_the_workers(tree, tmp_path):
    src, _ = tree
    a, b = tmp_path / "a", tmp_path / "b"
    pack(src, a, PackOptions(shards=2, workers=1))
    pack(src, b, PackOptions(shards=2, workers=2))
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_whole_shards_in_workers_give_the_same_bytes(tree, tmp_path):
    """With at least two shards per worker, workers write whole shards themselves."""
    src, files = tree
    cut = files["cat1"].read_bytes()
    (src / "fish" / "cut.jpg").write_bytes(cut[: len(cut) * 2 // 3])  # header fine, data not
    a, b = tmp_path / "a", tmp_path / "b"
    ma = pack(src, a, PackOptions(shards=5, workers=1, format="raw")).to_dict()
    mb = pack(src, b, PackOptions(shards=5, workers=2, format="raw")).to_dict()
    assert ma == mb and [s["path"] for s in ma["skipped"]] == ["fish/cut.jpg"]
    assert ma["skipped"][0]["reason"].startswith("truncated")
    for name in sorted(p.name for p in a.iterdir()):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_seed_and_no_shuffle_change_order_only(tree, tmp_path):
    src, _ = tree
    walk = [r.filename for r in records_of(src, tmp_path / "w", shuffle=False)]
    assert walk == sorted(walk, key=lambda s: s.split("/"))
    s1 = [r.filename for r in records_of(src, tmp_path / "s1", seed=1)]
    s2 = [r.filename for r in records_of(src, tmp_path / "s2", seed=2)]
    assert sorted(s1) == sorted(s2) == sorted(walk)
    assert s1 != s2


def records_of(src: Path, out: Path, **kw) -> list[Record]:
    pack(src, out, PackOptions(**kw))
    return records(out)


def test_shards_are_balanced_and_named(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(shards=3, name="train")).to_dict()
    names = [s["file"] for s in manifest["shards"]]
    assert names == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert [s["records"] for s in manifest["shards"]] == [4, 5, 4]
    for s in manifest["shards"]:
        data = (out / s["file"]).read_bytes()
        assert len(data) == s["bytes"]
        assert hashlib.sha256(data).hexdigest() == s["sha256"]
        # Index: "offset size" per record, covering the file exactly.
        lines = (out / s["index"]).read_text().splitlines()
        offsets = [tuple(map(int, line.split())) for line in lines]
        assert len(offsets) == s["records"]
        assert offsets[0][0] == 0
        assert sum(size for _, size in offsets) == len(data)
        for (o1, n1), (o2, _) in zip(offsets, offsets[1:], strict=False):
            assert o1 + n1 == o2


def test_corrupt_files_are_skipped_and_reported(tree, tmp_path):
    src, files = tree
    good = files["cat1"].read_bytes()
    (src / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "cat" / "fake.jpg").write_text("<html>404</html>")
    (src / "dog" / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    manifest = pack(src, out).to_dict()
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"cat/truncated.jpg", "cat/fake.jpg", "dog/empty.png"}
    assert "truncated" in reasons["cat/truncated.jpg"].lower()
    assert reasons["cat/fake.jpg"].startswith("not-an-image: ")
    assert reasons["dog/empty.png"] == "empty: the file has 0 bytes"
    assert manifest["records"] == 13
    assert "cat/truncated.jpg" not in by_name(out)


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200  # an iPhone's start
JXL_CODESTREAM = b"\xff\x0a\xfa\x7f\x01\x90\x08" + b"\x00" * 200
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 200


def test_heic_and_jpeg_xl_are_named_whatever_their_extension(tree, tmp_path):
    """Phone photos Pillow does not read go to their extra whatever their extension (and a
    .jxl is not ignored): these, headers and nothing else, are corrupt there, not "not an
    image"; a text file named .heic still is. (tests/images/test_extra_formats.py packs
    real ones, and has them skipped naming the extra when it is not installed.)"""
    src, _ = tree
    (src / "cat" / "IMG_0001.HEIC").write_bytes(HEIC)
    (src / "cat" / "IMG_0002.jpg").write_bytes(HEIC)  # an extension that lies
    (src / "dog" / "a.jxl").write_bytes(JXL_CODESTREAM)
    (src / "dog" / "b.png").write_bytes(JXL_CONTAINER)
    (src / "dog" / "notes.heic").write_text("not a photo")
    manifest = pack(src, tmp_path / "out").to_dict()
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    for name in ("cat/IMG_0001.HEIC", "cat/IMG_0002.jpg", "dog/a.jxl", "dog/b.png"):
        assert reasons[name].startswith("corrupt: "), reasons
    assert reasons["dog/notes.heic"].startswith("not-an-image: ")
    assert manifest["records"] == 13


def test_on_error_fail_stops_without_manifest(tree, tmp_path):
    src, files = tree
    (src / "cat" / "broken.png").write_bytes(files["cat0"].read_bytes()[:60])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="broken.png"):
        pack(src, out, PackOptions(on_error="fail"))
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".incomplete")]


def test_non_empty_out_is_refused_unless_overwrite(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty; pass --overwrite"):
        pack(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    pack(src, out, PackOptions(shards=3, overwrite=True))
    pack(src, out, PackOptions(shards=1, overwrite=True))
    # The earlier 3-shard files are gone; the user's own file is left alone.
    assert sorted(p.name for p in out.iterdir()) == [
        "data-00000-of-00001.tfrecord",
        "data-00000-of-00001.tfrecord.idx",
        "dataset_info.json",  # TFDS metadata
        "features.json",
        "image.class.label.labels.txt",
        "keep.txt",
        "manifest.json",
    ]


def test_labels_file_fixes_order(tree, tmp_path):
    src, _ = tree
    labels = tmp_path / "labels.txt"
    labels.write_text("fish\ncat\ndog\nbird\n")
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(labels_file=str(labels))).to_dict()
    assert manifest["labels"] == ["fish", "cat", "dog", "bird"]
    assert by_name(out)["fish/fish0.png"].label == 0
    labels.write_text("cat\ndog\n")
    with pytest.raises(InputError, match="fish"):
        pack(src, tmp_path / "out2", PackOptions(labels_file=str(labels)))


def test_a_labels_file_fixes_the_classes_of_a_list(tmp_path):
    # Their speed with many classes (once quadratic) is benchmarks/many_classes.py's.
    names = [f"class{i}" for i in range(300)]
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{n}\n" for n in names))
    listed = tmp_path / "list.csv"  # every class named by a row (the files need not exist)
    listed.write_text("".join(f"{n}/a.png,{n}\n" for n in reversed(names)))
    walk = from_list(tmp_path, str(listed), read_labels_file(labels))
    assert walk.labels == names and len(walk.missing) == len(names)
    labels.write_text("a\nb\na\nc\nb\n")
    with pytest.raises(InputError, match="label names listed twice: a, b$"):
        read_labels_file(labels)


def test_more_shards_than_images_is_refused(tree, tmp_path):
    src, _ = tree
    with pytest.raises(InputError, match="more than the 13 images"):
        pack(src, tmp_path / "out", PackOptions(shards=50))


def test_manifest_has_the_promised_fields(packed_tree):
    out, _ = packed_tree()
    m = json.loads((out / "manifest.json").read_text())
    for key in ("imgrec", "options", "records", "labels", "shards", "ignored", "skipped"):
        assert key in m
    assert m["options"]["format"] == "encoded"
    assert set(m["shards"][0]) >= {"file", "records", "bytes", "sha256"}
