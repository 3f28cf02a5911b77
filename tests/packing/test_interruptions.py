"""Interrupted packs: Ctrl-C and kills stop cleanly, and an unfinished OUT is never read as a
dataset.

Every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import files_of, names_in, run
from processes import JOURNAL_PLAN, one_error_line, shards_in
from samples import make_src

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.journal
import imgrec.packing.lock
from imgrec import InputError, PackOptions
from imgrec.core.storage import Folder
from imgrec.packing.lock import locked
from imgrec.reading.paths import resolve


def _interrupted_pack(src: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack stopped (Ctrl-C) after its shards, before its manifest."""

    def interrupted(folder: Folder, manifest: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(imgrec.packing.driver, "write_manifest", interrupted)
        with pytest.raises(KeyboardInterrupt):
            imgrec.pack(src, out, PackOptions(shards=2))
    assert (out / JOURNAL_PLAN).exists() and len(shards_in(out)) == 2
    assert not (out / "manifest.json").exists()


def _refused_as_unfinished(out: Path) -> None:
    for command in ("verify", "inspect"):
        r = run(command, out)
        assert r.exit_code == 1, (command, r.output)
        line = one_error_line(r.stderr)
        assert str(out) in line and "an unfinished dataset" in line, line
    with pytest.raises(InputError, match="an unfinished dataset"):
        resolve(out)


def test_an_interrupted_pack_is_not_read_as_a_dataset(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    _interrupted_pack(src, out, monkeypatch)
    _refused_as_unfinished(out)
    assert run("pack", src, out, "--shards", "2", "--resume").exit_code == 0
    assert run("verify", out).exit_code == 0


def test_a_folder_a_pack_is_writing_is_not_read_as_a_dataset(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    _interrupted_pack(src, out, monkeypatch)
    shutil.rmtree(out / ".imgrec-journal.d")  # only shards now, as while a pack runs
    with locked(Folder(out)):
        _refused_as_unfinished(out)
    assert run("verify", out).exit_code == 0  # loose shards, once no pack is writing


@pytest.mark.slow
def test_dataset_refuses_an_unfinished_dataset(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    _interrupted_pack(src, out, monkeypatch)
    with pytest.raises(InputError, match="an unfinished dataset"):
        imgrec.dataset(out)
    shutil.rmtree(out / ".imgrec-journal.d")
    with locked(Folder(out)), pytest.raises(InputError, match="an unfinished dataset"):
        imgrec.dataset(out)


def test_interrupted_between_index_and_shard_leaves_no_lone_index(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    real_replace = os.replace
    renamed: list[str] = []

    def replace(tmp: Any, final: Any) -> None:
        if str(final).endswith(".tfrecord"):  # the shard, after its index was renamed
            assert Path(str(final) + ".idx").exists()
            raise KeyboardInterrupt
        real_replace(tmp, final)
        renamed.append(Path(final).name)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            imgrec.pack(src, out, PackOptions(shards=2))
    assert "data-00000-of-00002.tfrecord.idx" in renamed  # the index did reach its name
    names = names_in(out)
    lone = [n for n in names if n.endswith(".idx") and n.removesuffix(".idx") not in names]
    assert not lone, names
    assert not [n for n in names if n.endswith(".incomplete")], names
    imgrec.pack(src, out, PackOptions(shards=2), resume=True)
    reference = tmp_path / "reference"
    imgrec.pack(src, reference, PackOptions(shards=2))
    assert files_of(out) == files_of(reference)


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


def test_ctrl_c_suggests_resume_only_for_pack(shared_tree, packed_tree, tmp_path, monkeypatch):
    src, _ = shared_tree
    out, _ = packed_tree()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("imgrec.checking.summary.summarize", interrupted)
    r = run("inspect", out)
    assert r.exit_code == 130
    assert r.stderr == "Interrupted.\n"
    monkeypatch.setattr("imgrec.packing.executors.local.LocalExecutor.scan_source", interrupted)
    r = run("pack", src, tmp_path / "out2")
    assert r.exit_code == 130 and "imgrec pack --resume" in r.stderr


def _journal_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C as the journal is being removed, after the manifest: one file of it gone."""
    real = imgrec.packing.journal.Journal.close

    def close(self: Any) -> None:
        monkeypatch.setattr(imgrec.packing.journal.Journal, "close", real)
        (self.out.where / JOURNAL_PLAN).unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(imgrec.packing.journal.Journal, "close", close)


def test_ctrl_c_once_the_manifest_is_written_leaves_a_complete_dataset(
    shared_tree, tmp_path, monkeypatch
):
    src, _ = shared_tree
    out = tmp_path / "out"
    _journal_cut_short(monkeypatch)
    r = run("pack", src, out, "--shards", "2")
    assert r.exit_code == 130
    assert r.stderr == (
        f"Interrupted after the pack had finished: {out / 'manifest.json'} is written and the"
        " dataset is complete.\n"
    )
    assert ".imgrec-journal.d" not in names_in(out)  # the removal was finished
    assert run("verify", out).exit_code == 0
    again = run("pack", src, out, "--shards", "2")  # a finished dataset, not an interrupted one
    assert again.exit_code == 1 and "is not empty; pass --overwrite" in one_error_line(again.stderr)
    # In Python: still a KeyboardInterrupt, and it says the dataset is complete.
    _journal_cut_short(monkeypatch)
    with pytest.raises(imgrec.packing.driver.InterruptedComplete) as stopped:
        imgrec.pack(src, tmp_path / "lib", PackOptions(shards=2))
    assert stopped.value.manifest == imgrec.read_manifest(tmp_path / "lib")
    assert ".imgrec-journal.d" not in names_in(tmp_path / "lib")


def test_ctrl_c_while_the_summary_prints_says_the_dataset_is_complete(
    shared_tree, tmp_path, monkeypatch
):
    src, _ = shared_tree
    out = tmp_path / "out"

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    # the first thing the summary asks of the manifest pack returned
    monkeypatch.setattr("imgrec.format.manifest.Manifest.split_warnings", interrupted)
    r = run("pack", src, out)
    assert r.exit_code == 130 and "the dataset is complete" in r.stderr, r.stderr
    assert "no manifest" not in r.stderr
    assert run("verify", out).exit_code == 0


def test_a_journal_left_beside_a_manifest_is_a_finished_run(shared_tree, tmp_path):
    """Killed (SIGKILL) while removing its journal, after the manifest: the dataset is
    complete, and is treated as one."""
    src, _ = shared_tree
    out = tmp_path / "out"
    assert run("pack", src, out, "--shards", "2").exit_code == 0
    (out / JOURNAL_PLAN).parent.mkdir()
    (out / JOURNAL_PLAN).write_text('{"key": "a finished run\'s"}')
    assert run("verify", out).exit_code == 0
    again = run("pack", src, out, "--shards", "2")
    assert again.exit_code == 1 and "is not empty; pass --overwrite" in one_error_line(again.stderr)
    resumed = run("pack", src, out, "--shards", "2", "--resume")
    assert resumed.exit_code == 1
    assert "a finished dataset, not an interrupted run" in one_error_line(resumed.stderr)
    assert run("pack", src, out, "--shards", "2", "--overwrite").exit_code == 0
    assert ".imgrec-journal.d" not in names_in(out)
