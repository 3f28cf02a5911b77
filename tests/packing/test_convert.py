"""imgrec convert: other tools' datasets become imgrec datasets whose records hold the
original images (bytes kept, or pixels equal), labels and names."""

from __future__ import annotations

import io
import json
import resource
import struct
import subprocess
import sys

import numpy as np
import pytest
from fixtures import files_of, run
from foreign import images, with_magic, write_inception, write_lmdb, write_rec, write_record
from PIL import Image

import imgrec
from imgrec import InputError, PackOptions
from imgrec.format.framing import frame, read_records
from imgrec.format.schema import Example, parse
from imgrec.packing.tfds import LABEL_NAMES


def records_of(out) -> dict[str, object]:
    """filename -> Record, from every shard of a dataset."""
    return {
        rec.filename: rec
        for shard in sorted(out.glob("*.tfrecord"))
        for rec in (parse(data) for _, data in read_records(shard))
    }


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("idx", [True, False], ids=["with-idx", "without-idx"])
def test_recordio_keeps_every_image_and_label(tmp_path, idx):
    source = images() + [(with_magic(), 2, "c2/magic.png")]
    rec = tmp_path / "train.rec"
    write_rec(rec, [(p, [float(label)], name) for p, label, name in source], idx=idx)
    assert (tmp_path / "train.idx").exists() == idx
    manifest = imgrec.convert(
        rec, tmp_path / "out", PackOptions(lst_file=str(rec.with_suffix(".lst")))
    )
    assert manifest.records == len(source) and manifest.labels == ["c0", "c1", "c2"]
    got = records_of(tmp_path / "out")
    for payload, label, name in source:
        assert got[name].data == payload  # bytes kept, the one holding the magic too
        assert (got[name].label, got[name].text) == (label, f"c{label}")


def test_recordio_without_a_list_names_records_by_number(tmp_path):
    rec = tmp_path / "data.rec"
    write_rec(rec, [(p, [float(label)], n) for p, label, n in images(3)])
    manifest = imgrec.convert(rec, tmp_path / "out")
    assert manifest.labels == ["0", "1", "2"]
    assert sorted(records_of(tmp_path / "out")) == ["00000000", "00000001", "00000002"]


def test_multi_label_recordio_keeps_all_labels(tmp_path):
    rec = tmp_path / "multi.rec"
    source = images(3)
    write_rec(rec, [(p, [float(label), 1.0, 0.5], n) for p, label, n in source])
    imgrec.convert(rec, tmp_path / "out")
    got = sorted(records_of(tmp_path / "out").values(), key=lambda r: r.filename)
    for rec_, (payload, label, _) in zip(got, source, strict=True):
        assert rec_.data == payload and rec_.label == -1
        assert rec_.labels == (float(label), 1.0, 0.5)


@pytest.mark.parametrize("raw", [False, True], ids=["encoded", "raw-bgr"])
def test_caffe_lmdb_gives_the_source_pixels(tmp_path, raw):
    source = images()
    write_lmdb(tmp_path / "lmdb", source, raw=raw)
    names = tmp_path / "classes.txt"
    names.write_text("zero\none\ntwo\n")
    manifest = imgrec.convert(tmp_path / "lmdb", tmp_path / "out",
                              PackOptions(labels_file=str(names)))  # fmt: skip
    assert manifest.labels == ["zero", "one", "two"]
    got = records_of(tmp_path / "out")
    for payload, label, name in source:
        rec = got[name]
        assert rec.label == label and rec.text == ["zero", "one", "two"][label]
        if raw:  # BGR planes became RGB pixels, stored losslessly
            assert rec.format == "png"
            np.testing.assert_array_equal(pixels(rec.data), pixels(payload))
        else:
            assert rec.data == payload


def test_caffe_float_data_becomes_float32_raw(tmp_path):
    import lmdb

    from imgrec.packing.converters.caffe import Datum

    values = np.random.default_rng(0).random((3, 4, 5), np.float32)  # C, H, W (BGR)
    env = lmdb.open(str(tmp_path / "lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        datum = Datum(channels=3, height=4, width=5, label=1)
        datum.float_data.extend(values.ravel().tolist())
        txn.put(b"00000000_x", datum.SerializeToString())
    env.close()
    imgrec.convert(tmp_path / "lmdb", tmp_path / "out", PackOptions(format="raw"))
    (rec,) = records_of(tmp_path / "out").values()
    assert (rec.format, rec.dtype, rec.filename) == ("raw", "float32", "x")
    stored = np.frombuffer(rec.data, "<f4").reshape(4, 5, 3)
    np.testing.assert_array_equal(stored, values.transpose(1, 2, 0)[..., ::-1])


def test_a_four_channel_caffe_datum_is_bgra_made_rgba(tmp_path):
    import lmdb

    from imgrec.packing.converters.caffe import Datum

    rgba = np.random.default_rng(1).integers(0, 256, (4, 5, 4), np.uint8)
    env = lmdb.open(str(tmp_path / "lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        planes = rgba[..., [2, 1, 0, 3]].transpose(2, 0, 1)  # as OpenCV's BGRA, planar
        datum = Datum(channels=4, height=4, width=5, label=0, data=planes.tobytes())
        txn.put(b"00000000_x", datum.SerializeToString())
    env.close()
    imgrec.convert(tmp_path / "lmdb", tmp_path / "out")
    (rec,) = records_of(tmp_path / "out").values()
    assert (rec.format, rec.channels) == ("png", 4)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(rec.data))), rgba)


def test_inception_tfrecords_and_named_keys(tmp_path):
    source = images()
    write_inception(tmp_path / "train-00000-of-00001", source)
    manifest = imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "out")
    assert manifest.labels == ["0", "c0", "c1", "c2"]  # 0 is inception's background
    got = records_of(tmp_path / "out")
    for payload, label, name in source:
        rec = got[name.rsplit("/", 1)[-1]]
        assert rec.data == payload and rec.label == label + 1 and rec.text == f"c{label}"
    keys = (("image", "image/encoded"), ("label", "image/class/label"))
    imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "keyed",
                   PackOptions(source_format="tfrecord", source_keys=keys))  # fmt: skip
    assert len(records_of(tmp_path / "keyed")) == len(source)
    with pytest.raises(InputError, match=r"--keys must name the image.s key \(image=\.\.\.\)"):
        imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "bad",
                       PackOptions(source_keys=(("label", "image/class/label"),)))  # fmt: skip


def test_a_key_typo_is_refused_not_packed_unlabelled(tmp_path):
    shard = tmp_path / "train-00000-of-00001"
    write_inception(shard, images())
    typo = (("image", "image/encoded"), ("label", "image/class/lable"))
    with pytest.raises(InputError, match=r"--keys label=image/class/lable: the first record has"
                       r" no such key \(it has .*image/class/label"):  # fmt: skip
        imgrec.convert(shard, tmp_path / "out", PackOptions(source_keys=typo))
    assert not (tmp_path / "out" / "manifest.json").exists()
    r = run("convert", shard, tmp_path / "cli", "--keys", "label=image/class/label")
    assert r.exit_code == 2 and "name the image's key too (image=KEY)" in r.output, r.output


def test_a_negative_label_is_stored_as_the_schemas_unlabelled(tmp_path):
    source = images(3)
    source[1] = (source[1][0], -6, source[1][2])  # written as -5 (inception adds 1)
    write_inception(tmp_path / "train-00000-of-00001", source)
    manifest = imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "out")
    got = records_of(tmp_path / "out")
    labels = {name: rec.label for name, rec in got.items()}
    assert labels[source[1][2].rsplit("/", 1)[-1]] == -1, labels
    assert sorted(labels.values()) == [-1, 1, 3]
    assert manifest.records == 3


def test_a_folder_of_extensionless_inception_shards_converts(tmp_path):
    # build_image_data.py names its shards train-00000-of-00002: no extension to go by.
    source = images()
    folder = tmp_path / "inception"
    folder.mkdir()
    write_inception(folder / "train-00000-of-00002", source[:5])
    write_inception(folder / "train-00001-of-00002", source[5:])
    r = run("convert", folder, tmp_path / "out", "--json")
    assert r.exit_code == 0 and "Traceback" not in r.stderr, r.output
    assert json.loads(r.stdout)["records"] == len(source)
    got = records_of(tmp_path / "out")
    assert sorted(rec.data for rec in got.values()) == sorted(p for p, _, _ in source)
    (tmp_path / "empty").mkdir()
    r = run("convert", tmp_path / "empty", tmp_path / "out2")
    assert r.exit_code == 1 and "--from recordio, lmdb or tfrecord" in r.stderr
    assert "Traceback" not in r.stderr and str(tmp_path / "empty") in r.stderr


def test_a_tfrecord_record_is_read_back_with_both_crcs_checked(tmp_path):
    from imgrec.images.loading import SkipImage
    from imgrec.packing.converters import tfrecords
    from imgrec.packing.discover import Ref

    source = images()
    shard = tmp_path / "train-00000-of-00001"
    write_inception(shard, source)
    offsets = [offset for offset, _ in read_records(shard)]

    def ref(k: int) -> Ref:
        return Ref("tfrecord", offset=offsets[k], fields=(str(shard), "image/encoded"))

    assert tfrecords.read(shard, ref(2)) == source[2][0]
    data = bytearray(shard.read_bytes())
    data[offsets[2] + 9] ^= 0xFF  # the length's own CRC: the length can no longer be trusted
    shard.write_bytes(bytes(data[: offsets[4] + 20]))  # and the file cut inside record 4
    with pytest.raises(SkipImage, match=f"the record at byte {offsets[2]} fails its CRC"):
        tfrecords.read(shard, ref(2))
    with pytest.raises(SkipImage, match=f"the record at byte {offsets[4]} is cut short"):
        tfrecords.read(shard, ref(4))
    assert tfrecords.read(shard, ref(3)) == source[3][0]


def _two_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.slow
def test_a_huge_class_number_is_renumbered_in_seconds_not_listed_up_to(tmp_path):
    # Listing every class up to 1,000,000,000 took gigabytes and minutes: run in a process
    # with a deadline and a memory limit, so that the old way fails instead of hanging.
    (p0, _, _), (p1, _, _) = images(2)
    write_rec(tmp_path / "l.rec", [(p0, [3.0], "a/0.png"), (p1, [1e9], "b/1.jpg")])
    write_inception(tmp_path / "l.tfrecord", [(p0, 2, "0.png"), (p1, 10**12 - 1, "1.jpg")])
    write_lmdb(tmp_path / "lmdb", [(p0, 0, "0.png"), (p1, 2**31 - 1, "1.jpg")], raw=False)
    sources = [tmp_path / "l.rec", tmp_path / "l.tfrecord", tmp_path / "lmdb"]
    code = (
        "import imgrec, json, sys; from imgrec import PackOptions as P;"
        " print(json.dumps([imgrec.convert(s, s + '.out', P(workers=1)).labels"
        " for s in sys.argv[1:]]))"
    )
    r = subprocess.run([sys.executable, "-c", code, *map(str, sources)], capture_output=True,
                       text=True, timeout=60, preexec_fn=_two_gib)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    wanted = [["3", "1000000000"], ["c2", "c999999999999"], ["0", "2147483647"]]
    assert json.loads(r.stdout) == wanted
    for source, names in zip(sources, wanted, strict=True):
        out = source.parent / f"{source.name}.out"
        got = sorted((rec.label, rec.text) for rec in records_of(out).values())
        assert got == [(0, names[0]), (1, names[1])]  # the classes' indices, 0..K-1
        assert (out / LABEL_NAMES).read_text() == f"{names[0]}\n{names[1]}\n"


def test_class_numbers_with_a_few_gaps_stay_the_sources(tmp_path):
    source = [(p, label * 400, n) for p, label, n in images(3)]  # 0, 400, 800
    write_inception(tmp_path / "train-00000-of-00001", source)
    manifest = imgrec.convert(tmp_path / "train-00000-of-00001", tmp_path / "out")
    assert len(manifest.labels) == 802 and manifest.labels[:3] == ["0", "c0", "2"]
    assert sorted(r.label for r in records_of(tmp_path / "out").values()) == [1, 401, 801]


@pytest.mark.slow
def test_convert_cli_is_deterministic_for_any_worker_count(tmp_path):
    source = images(12)
    rec = tmp_path / "train.rec"
    write_rec(rec, [(p, [float(label)], n) for p, label, n in source])
    args = ["convert", rec, "--lst", rec.with_suffix(".lst"), "--split", "train=0.5,val=0.5",
            "--shards", "4", "--json", "-q"]  # fmt: skip
    one = run(*args[:2], tmp_path / "one", *args[2:], "--workers", "1")
    two = run(*args[:2], tmp_path / "two", *args[2:], "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert json.loads(one.stdout)["records"] == 12
    assert files_of(tmp_path / "one") == files_of(tmp_path / "two")
    assert run("verify", tmp_path / "one").exit_code == 0


def test_unrecognised_and_damaged_sources_are_one_line_errors(tmp_path):
    (tmp_path / "mystery.bin").write_bytes(b"not a dataset at all")
    r = run("convert", tmp_path / "mystery.bin", tmp_path / "out")
    assert r.exit_code == 1 and "--from recordio, lmdb or tfrecord" in r.stderr
    rec = tmp_path / "cut.rec"
    write_rec(rec, [(p, [float(label)], n) for p, label, n in images(2)], idx=False)
    rec.write_bytes(rec.read_bytes()[:-40])
    r = run("convert", rec, tmp_path / "out2")
    assert r.exit_code == 1 and "cut short" in r.stderr and "Traceback" not in r.stderr


def test_an_idx_that_does_not_list_every_record_is_refused_naming_it(tmp_path):
    rec = tmp_path / "train.rec"
    write_rec(rec, [(p, [float(label)], n) for p, label, n in images(6)])
    idx = rec.with_suffix(".idx")
    lines = idx.read_text().splitlines()
    imgrec.convert(rec, tmp_path / "whole")  # the .idx as im2rec wrote it: every record
    stale = {  # what the .idx holds -> what the error says
        "\n".join(lines[:2]) + "\n": r"it lists 2 records, which end at byte \d+ of the .rec's",
        "\n".join(lines[:2] + lines[3:]) + "\n": r"it lists no record at byte \d+ of the .rec",
        "\n".join(lines) + f"\n6\t{rec.stat().st_size + 100}\n": r"offset \d+ is past the end",
    }
    for n, (text, says) in enumerate(stale.items()):
        idx.write_text(text)
        with pytest.raises(InputError, match=f"^{idx}: {says}.*remove it .*or rebuild it"):
            imgrec.convert(rec, tmp_path / f"out{n}")
        assert not (tmp_path / f"out{n}" / "manifest.json").exists()
    r = run("convert", rec, tmp_path / "cli")
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: {idx}: offset"), r.output
    idx.unlink()  # without it, the framing is walked: all 6
    assert imgrec.convert(rec, tmp_path / "walked").records == 6


def test_damaged_recordio_headers_are_one_line_errors_naming_the_record(tmp_path):
    ((payload, _, _),) = images(1)
    bad = {  # name -> (the record's payload, what the error says)
        "inf": (struct.pack("<IfQQ", 0, float("inf"), 0, 0) + payload,
                "has label inf, not a class number"),
        "flag": (struct.pack("<IfQQ", 1000, 0.0, 0, 0) + b"\0" * 6,  # 1000 labels, 6 bytes
                 "says it has 1000 labels (IRHeader flag), more than its 30 bytes hold"),
    }  # fmt: skip
    for name, (damaged, says) in bad.items():
        rec = tmp_path / f"{name}.rec"
        with open(rec, "wb") as f:
            write_record(f, damaged)
        r = run("convert", rec, tmp_path / f"out-{name}")
        assert r.exit_code == 1 and "Traceback" not in r.stderr, r.output
        assert r.stderr.startswith(f"Error: {rec}: record at byte 0 {says}"), r.stderr
        assert r.stderr.count("\n") == 1


def test_a_label_of_bytes_or_floats_is_refused_naming_its_key_and_kind(tmp_path):
    ((payload, _, _),) = images(1)
    for kind, value in (("bytes_list", b"3"), ("float_list", 3.0)):
        ex = Example()
        ex.features.feature["image/encoded"].bytes_list.value.append(payload)
        getattr(ex.features.feature["image/class/label"], kind).value.append(value)
        shard = tmp_path / f"{kind}.tfrecord"
        shard.write_bytes(frame(ex.SerializeToString()))
        r = run("convert", shard, tmp_path / f"out-{kind}")  # was: exit 0, every record -1
        assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
        said = f"Error: {shard}, record 0 (byte offset 0): its label 'image/class/label'"
        assert r.stderr.startswith(f"{said} is a {kind}, not the int64_list"), r.stderr
        unlabelled = run("convert", shard, tmp_path / f"as-asked-{kind}", "--keys",
                         "image=image/encoded")  # fmt: skip
        assert unlabelled.exit_code == 0, unlabelled.output
        assert [r.label for r in records_of(tmp_path / f"as-asked-{kind}").values()] == [-1]


def test_a_record_whose_bytes_are_no_example_is_an_error_naming_it(tmp_path):
    shard = tmp_path / "train-00000-of-00001"
    write_inception(shard, images(2))
    good = shard.read_bytes()
    shard.write_bytes(good + frame(b"\x0a\xff\xff\xff\xff\x0f"))  # a field longer than it
    r = run("convert", shard, tmp_path / "out")
    assert r.exit_code == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    said = f"Error: {shard}, record 2 (byte offset {len(good)}): its bytes pass their CRCs"
    assert r.stderr.startswith(f"{said} but are not a tf.train.Example"), r.stderr
