"""--resume: an interrupted pack (killed, Ctrl-C, a failed Beam run, locally or on a bucket)
resumes to the bytes of an uninterrupted one, and a resume that cannot be one is refused.

Every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from buckets import BUCKET, NAMES_SOURCE, objects, s3_beam_pack
from fixtures import beam_pack, disk_full_on, files_of, names_in, smooth_rgb
from PIL import Image
from processes import JOURNAL_PLAN, cli, packing, shards_in, start, stop, wait_until
from samples import make_src, photo_source

from imgrec import InputError, OutputError, PackOptions, pack
from imgrec.format.framing import ShardWriter, frames
from imgrec.packing.executors import tasks


@pytest.mark.slow
def test_interrupted_beam_run_resumes_to_the_same_bytes(src, tmp_path, monkeypatch):
    opts = PackOptions(shards=4)
    pack(src, tmp_path / "local", opts)
    out = tmp_path / "beam"
    real = tasks.write_shard
    disk_full = disk_full_on("data-00002-of-00004.tfrecord", real)
    monkeypatch.setattr(tasks, "write_shard", disk_full)
    with pytest.raises(OutputError, match="Beam pipeline failed.*No space left.*--resume"):
        beam_pack(src, out, opts)
    assert not (out / "manifest.json").exists()
    assert (out / ".imgrec-journal.d" / "plan.json").is_file()
    assert not (out / "data-00002-of-00004.tfrecord").exists()
    with pytest.raises(OutputError, match="interrupted pack; pass --resume"):
        beam_pack(src, out, opts)
    monkeypatch.setattr(tasks, "write_shard", real)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("data-*.tfrecord")}
    beam_pack(src, out, opts, resume=True)
    assert files_of(out) == files_of(tmp_path / "local")
    for name, mtime in finished.items():  # shards the first run finished were kept
        assert (out / name).stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_interrupted_bucket_run_resumes_to_the_same_bytes(photos, s3, tmp_path, monkeypatch):
    root, url = photos
    opts = PackOptions(shards=4)
    pack(root, tmp_path / "local", opts)
    out = f"s3://{BUCKET}/resumed"
    real = tasks.write_shard
    disk_full = disk_full_on("data-00002-of-00004.tfrecord", real)
    monkeypatch.setattr(tasks, "write_shard", disk_full)
    with pytest.raises(OutputError, match="Beam pipeline failed.*--resume"):
        s3_beam_pack(url, out, opts)
    stored = objects(s3, "resumed")
    assert "manifest.json" not in stored and ".imgrec-journal.d/plan.json" in stored
    assert "data-00002-of-00004.tfrecord" not in stored
    with pytest.raises(OutputError, match="interrupted pack; pass --resume"):
        s3_beam_pack(url, out, opts)
    monkeypatch.setattr(tasks, "write_shard", real)
    s3_beam_pack(url, out, opts, resume=True)
    stored = objects(s3, "resumed")
    expected = files_of(tmp_path / "local")
    assert stored.keys() == expected.keys()
    assert {k: v for k, v in stored.items() if k not in NAMES_SOURCE} == {
        k: v for k, v in expected.items() if k not in NAMES_SOURCE
    }


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


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10)
    return [int(p) for p in found.stdout.split()]


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie runs nothing; an orphaned one may
    wait for a reaper that never comes in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
def test_kill_9_of_the_pack_stops_its_workers_and_resume_finishes(tmp_path):
    src = photo_source(tmp_path / "src", 400)
    opts = ("--format", "png", "--shards", "16", "--workers", "2", "-q")
    out = tmp_path / "out"
    proc = start("pack", src, out, *opts, cwd=tmp_path)
    workers: list[int] = []
    try:
        wait_until(lambda: packing(out), "first records", 60, proc)
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, not its group
        proc.wait(timeout=10)
        at_kill = shards_in(out)
        assert len(at_kill) < 16, "the pack finished before it was killed"
        wait_until(lambda: not any(map(_alive, workers)), "end of every worker", 10)
        assert shards_in(out) == at_kill, "a worker renamed a shard into OUT after the kill"
    finally:
        stop(proc)
        for pid in workers:  # only if the test failed: the pack's own workers
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    resumed = cli("pack", src, out, "--resume", *opts, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference"
    whole = cli("pack", src, reference, *opts, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert files_of(out) == files_of(reference)


@pytest.mark.slow
def test_kill_9_before_the_first_shard_can_be_resumed(tmp_path):
    src = photo_source(tmp_path / "src", 200)
    # raw: a header scan, then the plan, then the images loaded (a local pack into PNGs
    # encodes them all before its plan, and then writes its shard at once)
    opts = ("--format", "raw", "--shards", "1", "-q")
    out = tmp_path / "out"
    proc = start("pack", src, out, *opts, cwd=tmp_path)
    try:
        wait_until(lambda: (out / JOURNAL_PLAN).exists(), "journal plan", 60, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
    assert not shards_in(out), "the shard was finished before the kill: nothing to check"
    resumed = cli("pack", src, out, "--resume", *opts, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resume" not in resumed.stderr
    reference = tmp_path / "reference"
    assert cli("pack", src, reference, *opts, cwd=tmp_path).returncode == 0
    assert files_of(out) == files_of(reference)


@pytest.mark.slow
def test_a_local_resume_of_an_interrupted_beam_run_leaves_no_journal(tree, tmp_path, monkeypatch):
    pytest.importorskip("apache_beam")
    from imgrec.packing.executors import tasks

    src, _ = tree
    opts = PackOptions(shards=3)
    pack(src, tmp_path / "whole", opts)
    out = tmp_path / "out"
    monkeypatch.setattr(tasks, "write_shard", disk_full_on("data-00001-of-00003.tfrecord",
                                                          tasks.write_shard))  # fmt: skip
    with pytest.raises(OutputError, match="--resume"):
        beam_pack(src, out, opts)
    assert ".imgrec-journal.d" in names_in(out)
    pack(src, out, opts, resume=True)  # the local runner finishes what Beam started
    assert names_in(out) == names_in(tmp_path / "whole")
    assert files_of(out) == files_of(tmp_path / "whole")


def test_a_refused_resume_names_the_changed_files(tmp_path, monkeypatch):
    src = make_src(tmp_path / "src")
    out = tmp_path / "out"

    def interrupted(folder, manifest) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # stopped after its shards, before its manifest
        m.setattr("imgrec.packing.driver.write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pack(src, out, PackOptions(shards=2))
    images = sorted(p for p in src.rglob("*.png"))
    with images[0].open("ab") as f:
        f.write(b"\0")  # one byte more
    with pytest.raises(InputError) as refused:
        pack(src, out, PackOptions(shards=2), resume=True)
    rel = images[0].relative_to(src).as_posix()
    assert f"(0 added, 0 removed, 1 modified): modified {rel};" in str(refused.value)
    assert "to resume, undo those changes" in str(refused.value)
    assert "--overwrite" in str(refused.value)
    for image in images[1:6]:
        image.unlink()
    with pytest.raises(InputError) as refused:
        pack(src, out, PackOptions(shards=2), resume=True)
    gone = [image.relative_to(src).as_posix() for image in images[1:4]]
    assert f"removed {', '.join(gone)} and 2 more; modified {rel};" in str(refused.value)
