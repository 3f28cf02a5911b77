"""Full disks and read-only folders at each step of a pack: one clear error, nothing already
written lost, no temporary file left.

They are simulated by injecting the OSError (the tests also run as a non-root user, and as
root, where permissions would not stop a write)."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from fixtures import files_of, names_in, run
from processes import JOURNAL_PLAN, one_error_line, shards_in
from samples import make_src

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import OutputError, PackOptions, pack
from imgrec.core.storage import Folder
from imgrec.format.framing import ShardWriter
from imgrec.format.layout import PIECES


def _fail(monkeypatch: pytest.MonkeyPatch, method: str, err: int, name: str | None) -> None:
    """``Folder.<method>`` raises OSError(err) for the file ``name`` (every file if None)."""
    real = getattr(Folder, method)

    def failing(self: Folder, file: str, *args: Any, **kwargs: Any) -> Any:
        if name is None or file == name:
            raise OSError(err, os.strerror(err))
        return real(self, file, *args, **kwargs)

    monkeypatch.setattr(Folder, method, failing)


def test_read_only_out_in_the_overwrite_clean_up_keeps_the_dataset(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    imgrec.pack(src, out, PackOptions(shards=2))
    before = files_of(out)
    _fail(monkeypatch, "delete", errno.EROFS, None)
    r = run("pack", src, out, "--overwrite", "--format", "raw")
    assert r.exit_code == 1
    line = one_error_line(r.stderr)
    assert str(out) in line and "choose a writable OUT" in line
    assert files_of(out) == before  # shards, indexes and manifest still there, unchanged
    with pytest.raises(OutputError, match="choose a writable OUT"):
        imgrec.pack(src, out, PackOptions(overwrite=True))
    assert files_of(out) == before
    monkeypatch.undo()
    assert run("verify", out).exit_code == 0


def test_read_only_out_when_taking_the_lock(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    imgrec.pack(src, out)
    before = files_of(out)

    def read_only(path: Path) -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(imgrec.packing.lock, "_acquire", read_only)
    r = run("pack", src, out, "--overwrite")
    assert r.exit_code == 1
    line = one_error_line(r.stderr)
    assert str(out) in line and "choose a writable OUT" in line
    assert files_of(out) == before


def test_full_disk_writing_the_journal_plan(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    _fail(monkeypatch, "write", errno.ENOSPC, JOURNAL_PLAN)
    r = run("pack", src, out)
    assert r.exit_code == 1
    line = one_error_line(r.stderr)
    assert str(out) in line and "free some space" in line
    with pytest.raises(OutputError, match="free some space"):
        imgrec.pack(src, out)
    assert not out.exists() or not shards_in(out)


def test_full_disk_before_the_journal_keeps_the_earlier_dataset(tree, tmp_path, monkeypatch):
    # Nothing can be resumed before the journal exists: the advice is to run again, and a
    # dataset being overwritten is still whole (its manifest is removed only after).
    src, _ = tree
    out = tmp_path / "out"
    imgrec.pack(src, out, PackOptions(shards=2))
    before = files_of(out)
    _fail(monkeypatch, "write", errno.ENOSPC, JOURNAL_PLAN)
    r = run("pack", src, out, "--shards", "3", "--overwrite")
    line = one_error_line(r.stderr)
    assert r.exit_code == 1 and "free some space and run again" in line
    assert "--resume" not in line
    monkeypatch.undo()
    assert files_of(out) == before and run("verify", out).exit_code == 0


def test_read_only_out_writing_the_manifest(tree, tmp_path, monkeypatch):
    src, _ = tree
    out = tmp_path / "out"
    _fail(monkeypatch, "write", errno.EROFS, "manifest.json")
    r = run("pack", src, out, "--shards", "2")
    assert r.exit_code == 1
    line = one_error_line(r.stderr)
    assert str(out) in line and "choose a writable OUT" in line
    assert not (out / "manifest.json").exists()
    assert not [n for n in names_in(out) if n.endswith(".incomplete")]
    monkeypatch.undo()  # the folder is writable again: the finished shards are kept
    r = run("pack", src, out, "--shards", "2", "--resume")
    assert r.exit_code == 0, r.output
    reference = tmp_path / "reference"
    imgrec.pack(src, reference, PackOptions(shards=2))
    assert files_of(out) == files_of(reference)


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


def test_a_full_disk_during_the_first_pass_is_one_clear_error(odd_src, tmp_path, monkeypatch):
    import errno

    from imgrec.core.errors import OutputError
    from imgrec.packing.executors import onepass

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onepass, "open", full, raising=False)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="cannot write .No space left on device.; free some"):
        pack(odd_src, out, PackOptions(workers=1))  # in this process: the patch holds
    assert not out.exists()  # the pieces removed; nothing else had been written
    # raised in a worker, the error reaches the main process whole
    error = OutputError("OUT/.imgrec-pieces.d: cannot write (No space left on device)")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_full_disk_in_the_working_folder_is_one_clear_error(odd_src, tmp_path, monkeypatch):
    import errno

    from imgrec.core import spool
    from imgrec.core.errors import OutputError

    out = tmp_path / "out"
    pack(odd_src, out, PackOptions(workers=1))
    before = files_of(out)

    def full(self, data):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.Blobs, "append", full)
    with pytest.raises(OutputError, match=r"pieces.d: cannot write .No space left on device.; "):
        pack(odd_src, out, PackOptions(workers=1, overwrite=True))
    assert files_of(out) == before  # the dataset already there is untouched
    assert not (out / PIECES).exists()
