"""Interrupted packs: Ctrl-C and kills stop cleanly, and an unfinished OUT is never read as a
dataset.

Every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import multiprocessing.util
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
from samples import make_src, photo_source

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.journal
import imgrec.packing.lock
from imgrec import InputError, PackOptions
from imgrec.core.storage import Folder
from imgrec.packing.executors.pool import in_order
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


def test_ctrl_c_before_a_command_runs_is_an_interruption_not_a_failure(
    shared_tree, tmp_path, monkeypatch, capsys
):
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    # While Click parses the command line (the group's callback runs before the command's)
    monkeypatch.setattr("imgrec.cli.commands.quiet_beam_logs", interrupted)
    r = run("pack", shared_tree[0], tmp_path / "out")
    assert (r.exit_code, r.stderr) == (130, "Interrupted.\n")  # not Click's Aborted!, 1
    assert not (tmp_path / "out").exists()

    # While `imgrec` loads its commands
    class Loading:
        def find_spec(self, name: str, *args: Any) -> None:
            if name == "imgrec.cli.commands":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "imgrec.cli.commands")
    monkeypatch.setattr(sys, "meta_path", [Loading(), *sys.meta_path])
    import imgrec.cli

    with pytest.raises(SystemExit) as stopped:
        imgrec.cli.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "Interrupted.\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_imgrec_exits_keeps_its_status(signum, tmp_path):
    """Once the command has ended (here: printed its version), a Ctrl-C or SIGTERM as the
    interpreter exits changes nothing: not a silent 130 or 143, nor a message."""
    script = (
        "import atexit, os, sys\n"
        "from imgrec.cli import main\n"
        f"atexit.register(lambda: os.kill(os.getpid(), {int(signum)}))\n"
        "sys.argv = ['imgrec', '--version']\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.startswith("imgrec, version")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_group_as_a_worker_starts_does_not_reach_it(signum, monkeypatch, capfd):
    """Ctrl-C from a terminal reaches every process of the group: also a worker still in
    multiprocessing's start-up, before imgrec's code in it runs."""
    real = multiprocessing.util._close_stdin  # run in each new worker, before its target

    def signalled() -> None:
        os.kill(os.getpid(), signum)
        real()

    monkeypatch.setattr(multiprocessing.util, "_close_stdin", signalled)
    assert list(in_order(abs, range(-16, 0), workers=2)) == list(range(16, 0, -1))
    assert "Traceback" not in capfd.readouterr().err


def _workers_of(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_cleanly(tmp_path):
    """As a terminal sends Ctrl-C: to the whole process group, workers included, at several
    moments of a raw pack on two workers; and SIGTERM as a batch scheduler sends it."""
    src = photo_source(tmp_path / "src", 600)
    moments = [
        ("workers", signal.SIGINT, lambda out, pid: _workers_of(pid)),
        ("a shard", signal.SIGINT, lambda out, pid: bool(shards_in(out))),
        ("a shard", signal.SIGTERM, lambda out, pid: bool(shards_in(out))),
        ("the manifest", signal.SIGINT, lambda out, pid: (out / "manifest.json").exists()),
    ]
    for n, (moment, signum, reached) in enumerate(moments):
        out = tmp_path / f"out{n}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgrec", "pack", str(src), str(out), "--format", "raw",
             "--workers", "2", "--shards", "10", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not reached(out, proc.pid) and proc.poll() is None:
                assert time.monotonic() < deadline, f"no {moment} within a minute"
                time.sleep(0.001)
            assert proc.poll() is None, f"the pack ended before {moment}"
            os.killpg(proc.pid, signum)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
        what = (moment, signum.name, proc.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, what
        assert len(stderr.splitlines()) <= 1, what
        names = names_in(out) if out.exists() else []  # a run stopped early leaves none
        assert not [name for name in names if name.endswith(".incomplete")], (what, names)
        deadline = time.monotonic() + 10
        while not _group_gone(proc.pid):  # no worker left behind
            assert time.monotonic() < deadline, ("a worker outlived the pack", what)
            time.sleep(0.01)
        if "manifest.json" in names:  # finished: at once, or just as the signal came
            assert ".imgrec-journal.d" not in names, (what, names)
            assert proc.returncode == 0 or (
                proc.returncode == 130 and "the dataset is complete" in stderr
            ), what
        else:
            assert proc.returncode == 130, what
            assert stderr.startswith("Interrupted: stopped cleanly; no manifest"), what


def test_ctrl_c_suggests_resume_only_for_pack(shared_tree, packed_tree, tmp_path, monkeypatch):
    src, _ = shared_tree
    out, _ = packed_tree()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("imgrec.checking.summary.summarize", interrupted)
    r = run("inspect", out)
    assert r.exit_code == 130
    assert r.stderr == "Interrupted.\n"
    monkeypatch.setattr("imgrec.packing.executors.local.LocalExecutor.write", interrupted)
    r = run("pack", src, tmp_path / "out2")  # stopped once its plan is in the journal
    assert r.exit_code == 130 and "`imgrec pack --resume` continues it." in r.stderr
    assert run("pack", src, tmp_path / "out2", "--resume").exit_code == 130  # it resumes


def test_ctrl_c_in_the_first_pass_says_to_run_again_not_resume(shared_tree, tmp_path, monkeypatch):
    src, _ = shared_tree

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("imgrec.packing.executors.local.LocalExecutor.scan_source", interrupted)
    r = run("pack", src, tmp_path / "out")
    assert r.exit_code == 130
    assert r.stderr == (
        "Interrupted: stopped cleanly; no manifest was written. Nothing was finished to"
        " resume: run the same command again.\n"
    )
    monkeypatch.undo()
    assert run("pack", src, tmp_path / "out").exit_code == 0  # as it says


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
