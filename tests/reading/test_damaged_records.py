"""Damaged and malformed records on the read side: dataset() and decode report them and
read the rest."""

from __future__ import annotations

import json
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


def problems_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("problem:")]


def test_decode_says_records_cut_off_a_shard_are_missing_not_undecodable(tmp_path):
    from samples import make_src

    out = tmp_path / "out"
    imgrec.pack(make_src(tmp_path / "src", n=10), out)
    shard = next(out.glob("*.tfrecord"))
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2])
    r = run("decode", out, "--stats")
    assert r.exit_code == 1 and "Decoded 5 records" in r.stdout, r.output
    cut, missing = problems_in(r.stderr)
    assert cut.startswith(f"problem: {shard}, record 5 ") and "runs past the end" in cut
    assert missing.startswith(f"problem: {shard}: the manifest lists 10 records; 6 were found")
    assert "TensorFlow" not in r.stderr


def test_decode_says_a_manifest_listing_more_records_than_found_and_blames_no_decoder(tmp_path):
    from samples import make_src

    out = tmp_path / "out"
    imgrec.pack(make_src(tmp_path / "src", n=10), out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["records"] += 1
    manifest["shards"][0]["records"] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = run("decode", out, "--stats")
    assert r.exit_code == 1 and "Decoded 10 records" in r.stdout, r.output
    shard = out / manifest["shards"][0]["file"]
    assert problems_in(r.stderr) == [
        f"problem: {shard}: the manifest lists 11 records; 10 were found in the file (left out)"
    ]
    assert not problems_in(run("decode", out, "--stats", "--limit", "4").stderr)


def test_decode_counts_the_records_tensorflow_drops_as_it_drops_them(tmp_path, monkeypatch):
    # A record imgrec's checks pass but TensorFlow cannot decode: the checks waved through.
    monkeypatch.setattr("imgrec.reading.sources.check_record", lambda data, decode: (None, None))
    garbage = record(format="png", data=b"not a png", filename="bad")
    shard = shard_of(tmp_path / "s.tfrecord", record(filename="ok1"), garbage,
                     record(filename="ok2"))  # fmt: skip
    r = run("decode", shard, "--stats")  # no manifest: nothing else to count from
    assert r.exit_code == 1 and "Decoded 2 records" in r.stdout, r.output
    assert problems_in(r.stderr) == [
        f"problem: {shard}: 1 record(s) passed imgrec's checks but TensorFlow could not"
        " decode them (left out)"
    ]
