"""Damaged and malformed records on the read side: dataset() and decode report them and
read the rest."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures import run
from PIL import Image
from processes import cli
from samples import record, shard_of, shard_with_a_cut_jpeg, shard_with_a_png_without_iend

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock


@pytest.mark.slow
def test_decode_leaves_out_a_cut_jpeg_and_decodes_the_rest(tmp_path):
    shard = shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
    for _ in range(3):
        r = cli("decode", shard, "--stats", "-q", cwd=tmp_path, timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        problems = [line for line in r.stderr.splitlines() if line.startswith("problem:")]
        assert len(problems) == 1, r.stderr
        assert problems[0].startswith(f"problem: {shard}, record 1 ")
        assert problems[0].endswith("(left out)")
        assert "Decoded 3 records" in r.stdout, r.stdout
        assert "3-channel images (3):" in r.stdout


@pytest.mark.slow
def test_dataset_reports_a_cut_jpeg_and_yields_the_good_records(tmp_path):
    shard = shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
    problems: list[Any] = []
    ds = imgrec.dataset(shard, with_filenames=True, on_problem=problems.append)
    names = [filename.numpy().decode() for _image, _label, filename in ds]
    assert names == ["good0.jpg", "good1.jpg", "good2.jpg"]
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].record == 1
    assert f"{shard}, record 1 " in str(problems[0])


@pytest.mark.slow
def test_dataset_checks_with_tensorflow_s_rules_not_only_pillow_s(tmp_path):
    shard = shard_with_a_png_without_iend(tmp_path / "s.tfrecord")
    problems: list[Any] = []
    ds = imgrec.dataset(shard, with_filenames=True, on_problem=problems.append)
    names = [filename.numpy().decode() for _image, _label, filename in ds]
    assert names == ["good0.png", "good1.png"]
    assert [p.record for p in problems] == [1]
    assert "TensorFlow cannot decode this png" in str(problems[0])


HOSTILE = {
    "shape does not match the bytes": record(height=5),
    "negative dimension": record(height=-2, data=b""),
    "enormous dimensions": record(height=2**40, width=2**40, data=b"\0" * 6),
    "unknown dtype": record(dtype="complex128"),
    "unknown format": record(format="bmp"),
    "encoded size lies": record(
        format="png", data=Image.frombytes("L", (3, 2), b"\0" * 6).tobytes(), height=2, width=3
    ),
}


# About a second each (a TensorFlow pipeline, then decode): one case in the fast set.
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=() if c == "shape does not match the bytes" else pytest.mark.slow)
        for c in sorted(HOSTILE)
    ],
)
def test_malformed_records_are_reported_and_the_rest_decode(tmp_path, case):
    shard = shard_of(tmp_path / "s.tfrecord", record(filename="ok1"), HOSTILE[case],
                     record(filename="ok2"))  # fmt: skip
    problems = []
    names = [
        fn.numpy()
        for _, fn in imgrec.dataset(
            shard, labels=False, with_filenames=True, on_problem=problems.append
        )
    ]
    assert names == [b"ok1", b"ok2"]
    assert len(problems) == 1 and problems[0].record == 1 and problems[0].shard == str(shard)
    r = run("decode", shard, "-o", tmp_path / "o")
    assert r.exit_code == 1 and f"{shard}, record 1" in r.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ok1.npy", "ok2.npy"]
