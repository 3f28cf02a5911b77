"""imgrec verify: a good dataset passes; every problem is named with shard, record and
offset; --against the source; --decode."""

from __future__ import annotations

import json

from fixtures import run, smooth_rgb
from PIL import Image
from samples import (
    make_src,
    record,
    shard_of,
    shard_with_a_cut_jpeg,
    shard_with_a_png_without_iend,
)

from imgrec import PackOptions, pack
from imgrec.checking.integrity import verify
from imgrec.format.framing import ShardWriter, frame, read_records
from imgrec.format.schema import Record, parse, serialize


def test_verify_passes_a_good_dataset(tmp_path):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"
    pack(src, out, PackOptions(shards=2))
    r = run("verify", out, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] and report["records"] == 12 and report["shards"] == 2


def test_verify_names_shard_record_and_offset(tmp_path):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(shards=1, shuffle=False)).to_dict()
    shard = out / manifest["shards"][0]["file"]
    offsets = [o for o, _ in read_records(shard)]
    data = bytearray(shard.read_bytes())
    data[offsets[5] + 40] ^= 0xFF  # inside record 5's data
    shard.write_bytes(bytes(data))
    r = run("verify", out)
    assert r.exit_code == 1
    assert f"{shard}, record 5 (byte offset {offsets[5]}): data CRC mismatch" in r.stdout
    assert "sha256 differs from the manifest" in r.stdout
    shard.write_bytes(bytes(data[: offsets[7] + 5]))  # cut short
    report = verify([str(out)])
    messages = [str(p) for p in report.problems]
    assert any("record 7" in m and "truncated" in m for m in messages)
    assert any("7 records, the manifest says 12" in m for m in messages)
    (out / manifest["shards"][0]["index"]).write_text("0 10\n")
    assert any("does not match the records" in str(p) for p in verify([str(out)]).problems)
    shard.unlink()
    assert "missing" in str(verify([str(out)]).problems[0])


def test_verify_against_source(tmp_path):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"
    pack(src, out, PackOptions(format="raw"))
    assert verify([str(out)], against=src).matched == 12
    (src / "c0" / "0000.png").unlink()
    Image.fromarray(smooth_rgb(16, 16, 99)).save(src / "c1" / "0001.png")  # changed content
    Image.fromarray(smooth_rgb(16, 16, 98)).save(src / "c2" / "extra.png")
    (src / "c2" / "notes.txt").write_text("not an image")
    report = verify([str(out)], against=src)
    assert not report.ok
    assert report.removed == ["c0/0000.png"]
    assert [c.split(":")[0] for c in report.changed] == ["c1/0001.png"]
    assert report.added == ["c2/extra.png"]
    assert report.matched == 10


def test_verify_against_catches_a_doctored_record(tmp_path):
    """Same source bytes (sha256 matches) but other pixels in the record."""
    src = make_src(tmp_path / "src", n=3)
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(format="raw", shuffle=False)).to_dict()
    shard = out / manifest["shards"][0]["file"]
    recs = [parse(d) for _, d in read_records(shard)]
    bad = Record(**{**recs[0].__dict__, "data": bytes(len(recs[0].data))})
    with ShardWriter(shard) as w:
        for rec in [bad, *recs[1:]]:
            w.write(serialize(rec))
    report = verify([str(out)], against=src)
    assert [c.split(":")[0] for c in report.changed] == [recs[0].filename]


def test_verify_decode_finds_a_jpeg_cut_past_its_header(tmp_path):
    shard = shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
    r = run("verify", shard)
    assert r.exit_code == 0, r.output
    assert "4 records in 1 shard(s)" in r.stdout and r.stdout.strip().endswith("OK")
    r = run("verify", shard, "--decode")
    assert r.exit_code == 1, r.output
    problems = [line for line in r.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1, r.stdout
    assert f"problem: {shard}, record 1 " in problems[0]
    assert "cannot be decoded" in problems[0]
    assert r.stdout.strip().endswith("FAILED")


def test_verify_decode_finds_a_png_that_pillow_reads_and_tensorflow_does_not(tmp_path):
    shard = shard_with_a_png_without_iend(tmp_path / "s.tfrecord")
    assert run("verify", shard).exit_code == 0
    r = run("verify", shard, "--decode")
    assert r.exit_code == 1, r.output
    problems = [line for line in r.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and problems[0].startswith(f"problem: {shard}, record 1 "), r.stdout
    assert problems[0].endswith(
        "TensorFlow cannot decode this png: it ends before its IEND chunk (the file is cut"
        " short or was not finished)"
    )


def test_verify_names_a_label_below_minus_one(tmp_path):
    # -1 is the schema's "no class"; a lower label is no class index at all.
    shard = shard_of(tmp_path / "s.tfrecord", record(label=0), record(label=-1), record(label=-5))
    offset = sum(len(frame(record(label=n))) for n in (0, -1))
    r = run("verify", shard)
    assert r.exit_code == 1, r.output
    problems = [line for line in r.stdout.splitlines() if line.startswith("problem:")]
    assert problems == [
        f"problem: {shard}, record 2 (byte offset {offset}): image/class/label -5 is not a"
        " class (0 or more, or -1 for unlabelled)"
    ], r.stdout
