"""The local pack reads each source once (executors/onepass.py): the same bytes and the same
skips as a header scan followed by a load, for any number of workers and shards."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest
from fixtures import files_of

from imgrec import PackOptions, pack
from imgrec.core import storage
from imgrec.core.errors import InputError
from imgrec.format.layout import PIECES
from imgrec.packing.executors.local import LocalExecutor
from imgrec.packing.scan import scan_source


def _header_scan_then_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local executor as it was: a header-only scan in the main process, then a load of
    every image in the workers."""

    def header_scan(self, src, out, opts, progress):  # type: ignore[no-untyped-def]
        self._pieces = None
        return scan_source(src, out.where, opts, progress)

    monkeypatch.setattr(LocalExecutor, "scan_source", header_scan)


def _packed(src: Path, out: Path, **options: object) -> tuple[dict[str, bytes], dict]:
    manifest = pack(src, out, PackOptions(**options)).to_dict()  # type: ignore[arg-type]
    manifest.pop("source")
    return files_of(out), manifest


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"shards": 1},
        {"shards": 3, "seed": 7},
        {"format": "raw", "channels": "3", "max_side": 24},
        {"format": "raw", "shards": 1},
        {"format": "raw", "shards": 3, "seed": 5},
        {"split": (("train", 0.7), ("val", 0.3)), "shards": 4},
        {"format": "png", "resize": (16, 12)},
    ],
    ids=[
        "encoded",
        "one-shard",
        "three-shards",
        "raw",
        "raw-one-shard",
        "raw-three-shards",
        "split",
        "png",
    ],
)
def test_the_same_bytes_as_a_header_scan_then_a_load(odd_src, tmp_path, monkeypatch, options):
    one = _packed(odd_src, tmp_path / "w1", workers=1, **options)
    two = _packed(odd_src, tmp_path / "w2", workers=2, **options)
    _header_scan_then_load(monkeypatch)
    before = _packed(odd_src, tmp_path / "before", workers=2, **options)
    assert one == two == before
    files, manifest = one
    reasons = {Path(n["path"]).name: n["reason"] for n in manifest["skipped"]}
    assert reasons["truncated.jpg"].startswith("truncated: OSError: image file is truncated (")
    assert reasons["zero.jpg"] == "empty: the file has 0 bytes"
    assert reasons["text.jpg"] == (
        "not-an-image: the extension says image, but Pillow does not recognise the content"
    )
    assert reasons["bomb.png"] == "too-many-pixels: 100000x100000 is over --max-pixels 89478485"
    assert not any(name.startswith(PIECES) for name in files)


def test_each_source_is_read_once(odd_src, tmp_path, monkeypatch):
    opened: collections.Counter[str] = collections.Counter()
    real = storage.open_read

    def counting(path):  # type: ignore[no-untyped-def]
        opened[str(path)] += 1
        return real(path)

    monkeypatch.setattr(storage, "open_read", counting)
    pack(odd_src, tmp_path / "out", PackOptions(workers=1))
    sources = {str(p) for p in odd_src.rglob("*") if p.is_file() and not p.is_symlink()}
    assert opened and set(opened) <= sources
    assert max(opened.values()) == 1, opened.most_common(3)
    _header_scan_then_load(monkeypatch)
    opened.clear()
    pack(odd_src, tmp_path / "before", PackOptions(workers=1))
    assert max(opened.values()) == 2  # what it was: a header read, then a load


def test_the_pieces_are_removed_however_the_pack_ends(odd_src, tmp_path):
    out = tmp_path / "out"
    pack(odd_src, out, PackOptions(workers=2, shards=2))
    assert not (out / PIECES).exists()
    with pytest.raises(InputError, match="stopped by --on-error fail"):
        pack(odd_src, tmp_path / "failed", PackOptions(workers=2, on_error="fail"))
    assert not (tmp_path / "failed").exists()  # as before: a run that wrote nothing
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="no images to pack"):
        pack(junk, tmp_path / "none", PackOptions(workers=2))
    assert not (tmp_path / "none").exists()


def test_pieces_a_killed_run_left_do_not_block_the_next(odd_src, tmp_path):
    out = tmp_path / "out"
    (out / PIECES).mkdir(parents=True)
    (out / PIECES / "000000.rec").write_bytes(b"left by a run killed with SIGKILL")
    pack(odd_src, out, PackOptions(workers=1))
    assert not (out / PIECES).exists()
    again = tmp_path / "again"
    shutil.copytree(out, again)
    assert files_of(out) == files_of(again)


@pytest.mark.slow
@pytest.mark.parametrize("shards", [1, 3])
def test_raw_shards_cut_into_runs_are_the_same_bytes(odd_src, tmp_path, monkeypatch, shards):
    """With fewer shards than a round of workers, raw shards are written by all the workers
    in runs of records (executors/runs.py): runs of 2 records here, so that the piece files
    are reused many times over, with skipped images inside runs, read 1,000 bytes at a time."""
    from imgrec.packing.executors import runs

    options = {"format": "raw", "shards": shards, "max_side": 16}
    one = _packed(odd_src, tmp_path / "w1", workers=1, **options)
    monkeypatch.setattr(runs, "RUN", 2)
    monkeypatch.setattr(runs, "CHUNK", 1000)  # a run's piece read in several pieces
    two = _packed(odd_src, tmp_path / "w2", workers=2, **options)
    assert one == two
    assert any("truncated" in n["reason"] for n in one[1]["skipped"])
    assert not (tmp_path / "w2" / PIECES).exists()


def _tiny_images(root: Path, count: int) -> Path:
    from PIL import Image

    for k in range(count):
        folder = root / f"class{k % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (k % 256, 7, 9)).save(folder / f"{k:05d}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_the_main_process_holds_nothing_per_image(tmp_path, monkeypatch, fmt):
    """The listing, the scan, the plan and each image's place in the pieces are kept in
    files (``spool``), and a shard's index is written as its records are. What the process
    holds as it finishes each shard grows only by the numbers a sequence holds in memory
    before it moves into its file (``spool.HELD``: 50 to 80 bytes per image here); it grew
    by 400 to 600 bytes per image when everything was held in memory. (pathlib's own
    allocations are left out: its interning of names may resize the interpreter's table of
    interned strings at any moment.)"""
    import pathlib
    import tracemalloc

    from imgrec.format import framing

    held: list[int] = []
    finish = framing.ShardWriter.__exit__

    def finished(self, *exc):  # type: ignore[no-untyped-def]
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot()
            kept = snapshot.filter_traces([tracemalloc.Filter(False, pathlib.__file__)])
            held.append(sum(t.size for t in kept.traces))
        return finish(self, *exc)

    monkeypatch.setattr(framing.ShardWriter, "__exit__", finished)
    sources = {count: _tiny_images(tmp_path / f"src{count}", count) for count in (200, 1_400)}
    pack(sources[200], tmp_path / "warm", PackOptions(workers=1, format=fmt))  # imports
    peaks = []
    for count, src in sources.items():
        held.clear()
        tracemalloc.start()
        try:
            pack(src, tmp_path / f"out{count}", PackOptions(workers=1, format=fmt))
        finally:
            tracemalloc.stop()
        peaks.append(max(held))
    per_image = (peaks[1] - peaks[0]) / 1_200
    assert per_image < 200, f"{per_image:.0f} bytes more held for each image"
