"""One writer per OUT: the lock, a busy OUT, the lock of a killed holder.

Every wait has a deadline and every subprocess a timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures import files_of, names_in
from processes import cli, one_error_line, packing, start, stop, wait_until
from samples import photo_source

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import OutputError, PackOptions
from imgrec.core.storage import Folder
from imgrec.format.layout import LOCK
from imgrec.packing.lock import locked


@pytest.mark.slow
def test_a_second_pack_into_a_busy_out_fails_at_once(tmp_path):
    src = photo_source(tmp_path / "src", 400)
    out = tmp_path / "out"
    first = start(
        "pack", src, out, "--format", "png", "--shards", "8", "--overwrite", "--workers", "1",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_until(lambda: packing(out), "first records of the first pack", 60, first)
        lock_held = (out / LOCK).exists()
        second = cli("pack", src, out, "--format", "raw", "--overwrite", cwd=tmp_path, timeout=60)
        first_still_running = first.poll() is None
        stdout, stderr = first.communicate(timeout=120)
    finally:
        stop(first)
    assert second.returncode == 1, second.stdout + second.stderr
    line = one_error_line(second.stderr)
    assert f"another imgrec pack is writing here (pid {first.pid}" in line
    assert str(out) in line
    assert first_still_running, "the second pack waited for the first instead of failing"
    assert lock_held
    assert first.returncode == 0, stderr
    verified = cli("verify", out, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "400 records in 8 shard(s)" in verified.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["records"] == 400 and manifest["options"]["format"] == "png"
    assert not (out / LOCK).exists()


def test_pack_refuses_an_out_whose_lock_is_held_and_touches_nothing(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    imgrec.pack(src, out)
    before = files_of(out)
    with locked(Folder(out)):
        held = files_of(out)
        with pytest.raises(
            OutputError, match=rf"another imgrec pack is writing here \(pid {os.getpid()}"
        ):
            imgrec.pack(src, out, PackOptions(format="raw", overwrite=True))
        assert files_of(out) == held
        assert names_in(out) == sorted([*before, LOCK])
    assert files_of(out) == before


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from imgrec.packing.lock import locked
from imgrec.core.storage import Folder
with locked(Folder(Path(sys.argv[1]))):
    time.sleep(120)
"""


def _lock_holder(out: Path) -> Any:
    try:
        return json.loads((out / LOCK).read_text()).get("pid")
    except (OSError, ValueError):
        return None


def test_the_lock_of_a_killed_holder_is_free(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _lock_holder(out) == holder.pid, "lock taken by the holder", 30, holder)
        with pytest.raises(OutputError, match=rf"writing here \(pid {holder.pid} "):
            imgrec.pack(src, out)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        stop(holder)
    assert holder.returncode == -signal.SIGKILL
    assert (out / LOCK).exists()  # left behind by kill -9: the kernel dropped the flock
    manifest = imgrec.pack(src, out)
    assert manifest.records == 13
    assert not (out / LOCK).exists()


def test_ctrl_c_as_the_lock_is_released_still_releases_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = Path.unlink

    def unlink(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == LOCK:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", unlink)
        with pytest.raises(KeyboardInterrupt), locked(Folder(out)):
            pass
    with locked(Folder(out)):  # not held any more by the run that was stopped
        pass
