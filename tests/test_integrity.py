"""Integrity: verify, interrupted and resumed packs, disk trouble, hostile shards."""

from __future__ import annotations

import errno
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures import files_of, run, smooth_rgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import imgrec
from imgrec import OutputError, PackOptions, pack
from imgrec.checking.integrity import verify
from imgrec.core.errors import InputError, ShardError
from imgrec.format.framing import ShardWriter, frame, frames, read_records
from imgrec.format.record_check import check_record
from imgrec.format.schema import Record, SchemaError, parse, serialize


def make_src(root: Path, n: int = 12, size: int = 16) -> Path:
    for i in range(n):
        folder = root / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_rgb(size, size + i % 5, i)).save(folder / f"{i:04d}.png")
    return root


# --- verify -----------------------------------------------------------------------------


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


# --- interrupted, resumed, failing runs ---------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_pack_then_resume_is_byte_identical(tmp_path):
    src = make_src(tmp_path / "src", n=480, size=128)
    args = ["--format", "png", "--shards", "40", "--workers", "1", "-q"]
    cmd = [sys.executable, "-m", "imgrec", "pack", str(src)]
    out = tmp_path / "out"
    proc = subprocess.Popen([*cmd, str(out), *args], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = list(out.glob("data-*.tfrecord")) if out.exists() else []
        if len(finished) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "pack ended before it could be killed"
    # On disk: no manifest; every file under a final shard name is complete and intact.
    assert not (out / "manifest.json").exists()
    finals = sorted(out.glob("data-*.tfrecord"))
    assert 3 <= len(finals) < 40
    for shard in finals:
        assert all(f.problem is None for f in frames(shard))
        assert (out / (shard.name + ".idx")).is_file()
    r = subprocess.run([*cmd, str(out), *args], capture_output=True, text=True)
    assert r.returncode == 1 and "--resume" in r.stderr  # refuses to mix runs silently
    r = subprocess.run([*cmd, str(out), *args, "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole"
    r = subprocess.run([*cmd, str(whole), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert files_of(out) == files_of(whole)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_exit_130(tmp_path):
    src = make_src(tmp_path / "src", n=960, size=128)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgrec", "pack", str(src), str(out), "--shards", "40",
         "--format", "png", "--workers", "2", "-q"],
        stderr=subprocess.PIPE,
        text=True,
        # A shell runs background jobs (CI may be one) with SIGINT ignored, and a child
        # inherits that; a user's terminal delivers Ctrl-C with the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (out.exists() and list(out.glob("data-*.tfrecord"))):
        assert time.monotonic() < deadline, "no shard finished within a minute"
        time.sleep(0.005)
    assert proc.poll() is None, "pack ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert stderr.startswith("Interrupted: stopped cleanly") and "Traceback" not in stderr
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".*.incomplete"))


def test_resume_refuses_other_options_or_a_changed_source(tmp_path):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".imgrec-journal.d").mkdir()
    (out / ".imgrec-journal.d" / "plan.json").write_text("{}")
    with pytest.raises(OutputError, match="interrupted pack; pass --resume"):
        pack(src, out)

    def interrupted() -> None:
        calls = {"n": 0}
        real = ShardWriter.write

        def flaky(self, data):
            calls["n"] += 1
            if calls["n"] > 5:
                raise KeyboardInterrupt
            real(self, data)

        ShardWriter.write = flaky
        try:
            with pytest.raises(KeyboardInterrupt):
                pack(src, out, PackOptions(shards=4, overwrite=True))
        finally:
            ShardWriter.write = real

    interrupted()
    with pytest.raises(InputError, match="options differ.*quality \\(was 95\\)"):
        pack(src, out, PackOptions(shards=4, quality=80), resume=True)
    Image.fromarray(smooth_rgb(9, 9, 7)).save(src / "c0" / "new.png")
    with pytest.raises(InputError, match="source changed.*1 added, 0 removed, 0 modified"):
        pack(src, out, PackOptions(shards=4), resume=True)
    (src / "c0" / "new.png").unlink()
    manifest = pack(src, out, PackOptions(shards=4), resume=True).to_dict()
    assert manifest["records"] == 12
    with pytest.raises(OutputError, match="finished dataset"):
        pack(src, out, PackOptions(shards=4), resume=True)


def test_disk_full_is_a_clear_error_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"
    real = ShardWriter.write
    calls = {"n": 0}

    def full(self, data):
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, data)

    monkeypatch.setattr(ShardWriter, "write", full)
    r = run("pack", src, out, "--shards", "3", "--workers", "1")
    assert r.exit_code == 1
    assert "No space left on device" in r.stderr and "--resume" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".*.incomplete"))
    assert len(list(out.glob("data-*.tfrecord"))) == 1  # the shard finished before it


def test_unwritable_out_is_a_clear_error(tmp_path):
    src = make_src(tmp_path / "src", n=3)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("pack", src, blocker / "out")
    assert r.exit_code == 1 and "cannot create the output folder" in r.stderr


# --- hostile shards ----------------------------------------------------------------------


def record(**changes) -> bytes:
    base = dict(
        data=np.zeros((2, 3, 1), np.uint8).tobytes(), format="raw", height=2, width=3,
        channels=1, dtype="uint8", label=0, text="a", filename="a/x.png", sha256="0" * 64,
    )  # fmt: skip
    return serialize(Record(**{**base, **changes}))


def shard_of(path: Path, *records: bytes) -> Path:
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


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


def test_damaged_framing_huge_length_and_truncation(tmp_path):
    good = [record(filename=f"f{i}") for i in range(3)]
    huge = struct.pack("<Q", 2**62)
    shard = tmp_path / "huge.tfrecord"
    shard.write_bytes(frame(good[0]) + huge + frame(good[1])[8:])
    found = list(frames(shard))
    assert [f.problem for f in found] == [None, "length CRC mismatch: the rest is unreadable"]
    r = run("decode", shard, "--stats", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["records"] == 1
    r = run("inspect", shard)
    assert r.exit_code == 1 and f"{shard}, record 1 (byte offset" in r.stderr
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(b"".join(frame(g) for g in good)[:-7])
    assert "runs past the end" in str(list(frames(cut))[-1].problem)


def test_decode_never_writes_outside_out_or_over_another_record(tmp_path):
    names = ["../../escape.png", "/etc/absolute.png", "", "nul\0byte.png", "same.png", "same.png",
             "a/../../up.png"]  # fmt: skip
    shard = shard_of(tmp_path / "s.tfrecord", *[record(filename=n) for n in names])
    out = tmp_path / "deep" / "out"
    r = run("decode", shard, "-o", out)
    assert r.exit_code == 0, r.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert len(written) == len(names)
    assert all(not name.startswith("..") for name in written)
    assert "same.npy" in written and "same-00000005.npy" in written
    assert not (tmp_path / "escape.npy").exists() and not (tmp_path / "deep" / "up.npy").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes_never_crash_the_readers(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "x.tfrecord"
    path.write_bytes(data)
    for f in frames(path):
        if f.data is not None and f.problem is None:
            check_record(f.data)
    try:
        for _, payload in read_records(path):
            parse(payload)
    except (ShardError, SchemaError):
        pass
    try:
        parse(data)
    except SchemaError:
        pass
    check_record(data)


VALID = b"".join(frame(record(filename=f"r{i}")) for i in range(3))


@pytest.mark.slow  # 300 examples; test_fuzz_random_bytes_never_crash_the_readers stays fast
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(VALID)))  # fmt: skip
def test_fuzz_mutated_shards_give_only_clean_errors(tmp_path_factory, flips, cut):
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    path = tmp_path_factory.mktemp("fz") / "x.tfrecord"
    path.write_bytes(bytes(data[:cut]))
    for f in frames(path):
        if f.data is not None:
            check_record(f.data)  # returns a problem, never raises
    report = verify([str(path)])
    assert report.records <= 3
    try:
        for _, payload in read_records(path):
            parse(payload)
    except (ShardError, SchemaError):
        pass
