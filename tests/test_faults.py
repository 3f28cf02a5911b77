"""Faults around a pack and hostile datasets: two writers, read-only and full disks, lying
containers, threads, hostile record names, damaged records, malformed manifests, a killed
pack, unfinished datasets.

Full disks and read-only folders are simulated by injecting the OSError (the tests also run
as a non-root user, and as root, where permissions would not stop a write). Every wait has a
deadline and every subprocess a timeout.

Tests that run ``python -m imgrec`` in a subprocess do so from ``tmp_path``: with
``PYTHONPATH=<another checkout>`` (and ``python -m pytest`` from this checkout) the
subprocesses run that checkout's imgrec, and these tests then check it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from corpus import _bomb_png
from fixtures import encode, files_of, names_in, run, smooth_rgb
from PIL import Image

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import InputError, OutputError, PackOptions
from imgrec.core.storage import Folder
from imgrec.format.framing import ShardWriter
from imgrec.format.layout import LOCK
from imgrec.format.schema import Record, serialize
from imgrec.images.loading import NotAnImage, SkipImage
from imgrec.packing.lock import locked
from imgrec.reading.paths import resolve

JOURNAL_PLAN = ".imgrec-journal.d/plan.json"


# ---------------------------------------------------------------------------------------------
# helpers


def cli(*args: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m imgrec ARGS`` in a subprocess started in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "imgrec", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: object, cwd: Path) -> subprocess.Popen[str]:
    """``python -m imgrec ARGS`` started in the background (stop it with ``stop``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "imgrec", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a process this test started, if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def wait_until(
    done: Callable[[], bool], what: str, seconds: float, proc: subprocess.Popen[str] | None = None
) -> None:
    """Poll until ``done()``; fail after ``seconds``, or at once if ``proc`` ended first."""
    deadline = time.monotonic() + seconds
    while not done():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n{out}{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds} s")
        time.sleep(0.02)


def photo_source(root: Path, n: int, side: int = 128) -> Path:
    """``n`` photo-like PNGs of side x side in two class folders (24 distinct images,
    repeated: packing with --format png decodes and encodes every one all the same)."""
    distinct = [encode(Image.fromarray(smooth_rgb(side, side, s)), "PNG") for s in range(24)]
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(distinct[i % len(distinct)])
    return root


def small_source(root: Path, n: int = 6) -> Path:
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_rgb(12 + i, 16, i)).save(folder / f"{i}.png")
    return root


def shards_in(folder: Path) -> list[str]:
    """Finished shard files in a folder (not index files, not temporary files)."""
    if not folder.is_dir():
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".tfrecord"))


def packing(folder: Path) -> bool:
    """A pack into ``folder`` has written something: a shard, or (a local pack reads and
    encodes every image before its plan, into pieces) the first piece (the working folder
    holds the scan's files from the start)."""
    pieces = folder / ".imgrec-pieces.d"
    return bool(shards_in(folder)) or (pieces.is_dir() and any(pieces.glob("*.rec")))


def one_error_line(stderr: str) -> str:
    """The single line of stderr, checked to be an ``Error:`` line without a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


def tree_digest(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (except under ``skip``) by relative path: its sha256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def jpeg(seed: int, h: int = 96, w: int = 128) -> bytes:
    return encode(Image.fromarray(smooth_rgb(h, w, seed)), "JPEG", quality=90)


def jpeg_record(name: str, data: bytes, h: int = 96, w: int = 128) -> Record:
    return Record(data, "jpeg", h, w, 3, "uint8", 0, "a", name, hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------------------------------
# 1. One writer per OUT


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


# ---------------------------------------------------------------------------------------------
# 2. Read-only OUT and a full disk at the start of a pack


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


# ---------------------------------------------------------------------------------------------
# 3. Containers that lie about the size of what they hold


def _icns(png: bytes, kind: bytes = b"ic07") -> bytes:
    """An .icns whose one entry (``ic07`` declares 128x128) holds this PNG."""
    entry = kind + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _huge_gray_png(side: int) -> bytes:
    """A valid 8-bit gray PNG of side x side (all black), compressed row by row: the
    pixels are never held in memory (20000 x 20000 is about 400 KB)."""
    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the row
    idat = b"".join([*(z.compress(row) for _ in range(side)), z.flush()])
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def test_icns_entry_holding_a_bigger_png_is_too_many_pixels(tmp_path):
    src = small_source(tmp_path / "src", 2)
    png = encode(Image.fromarray(smooth_rgb(400, 400, 1)), "PNG")
    (src / "a" / "liar.icns").write_bytes(_icns(png))
    with Image.open(src / "a" / "liar.icns") as im:
        assert im.size == (128, 128)  # what the container declares: under the limit
    manifest = imgrec.pack(src, tmp_path / "out", PackOptions(max_pixels=20000)).to_dict()
    assert manifest["records"] == 2
    [skipped] = manifest["skipped"]
    assert skipped["path"] == "a/liar.icns"
    assert skipped["reason"].startswith("too-many-pixels: it holds a 400x400 image"), skipped


@pytest.mark.slow
def test_icns_holding_a_20000_pixel_square_png_is_skipped_without_decoding(tmp_path):
    src = small_source(tmp_path / "src", 2)
    (src / "a" / "bomb.icns").write_bytes(_icns(_huge_gray_png(20000)))
    out = tmp_path / "out"
    # A parent of its own for the pack: RUSAGE_CHILDREN is then the pack's peak alone (this
    # process's may include earlier, bigger children).
    measure = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'imgrec', 'pack', *sys.argv[1:]], timeout=300)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", measure, str(src), str(out), "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert r.returncode == 0, r.stderr
    peak_mb = int(r.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    assert peak_mb < 300, f"the pack peaked at {peak_mb:.0f} MB: the embedded PNG was decoded"
    manifest = json.loads((out / "manifest.json").read_text())
    [skipped] = manifest["skipped"]
    assert skipped["path"] == "a/bomb.icns"
    assert skipped["reason"].startswith("too-many-pixels: it holds a 20000x20000 image"), skipped


# ---------------------------------------------------------------------------------------------
# 4. Threads: no process-wide Pillow or warnings setting is touched


def test_packs_and_loads_on_threads_leave_pillow_and_warnings_alone(tree, tmp_path):
    src, files = tree
    (src / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    liar = encode(Image.fromarray(smooth_rgb(300, 300, 3)), "PNG")
    (src / "liar.icns").write_bytes(_icns(liar))
    paths = [*files.values(), src / "bomb.png", src / "liar.icns"]
    pixels_before = Image.MAX_IMAGE_PIXELS
    filters_before = list(warnings.filters)
    seen: list[str] = []
    errors: list[BaseException] = []
    stop_watching = threading.Event()
    samples = 0

    def watch() -> None:
        nonlocal samples
        while not stop_watching.is_set():
            samples += 1
            pixels, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
            if pixels != pixels_before:
                seen.append(f"PIL.Image.MAX_IMAGE_PIXELS was {pixels}")
            if filters != filters_before:
                seen.append(f"warnings.filters was {filters[:3]}...")
            time.sleep(0)

    def packs(n: int) -> None:
        try:
            for round_ in range(3):
                opts = PackOptions(max_pixels=60_000, overwrite=round_ > 0, shards=2)
                imgrec.pack(src, tmp_path / f"out{n}", opts)
        except BaseException as e:
            errors.append(e)

    def loads() -> None:
        try:
            for _ in range(10):
                for path in paths:
                    try:
                        imgrec.images.loading.load_file(
                            path, imgrec.images.loading.ImageOptions(max_pixels=60_000)
                        )
                    except (NotAnImage, SkipImage):
                        pass
        except BaseException as e:
            errors.append(e)

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=packs, args=(n,)) for n in range(4)]
    workers += [threading.Thread(target=loads) for _ in range(2)]
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    stop_watching.set()
    watcher.join(timeout=10)
    assert not any(t.is_alive() for t in [*workers, watcher]), "a thread did not finish in time"
    assert not errors, errors
    assert samples > 100
    assert not seen, sorted(set(seen))
    assert Image.MAX_IMAGE_PIXELS == pixels_before
    assert list(warnings.filters) == filters_before
    for n in range(4):
        manifest = json.loads((tmp_path / f"out{n}" / "manifest.json").read_text())
        reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
        assert reasons["bomb.png"].startswith("too-many-pixels")
        assert reasons["liar.icns"].startswith("too-many-pixels: it holds a 300x300 image")


# ---------------------------------------------------------------------------------------------
# 5. decode -o on hostile names


@pytest.mark.slow
def test_decode_writes_one_file_per_record_under_long_and_clashing_names(tmp_path):
    src = tmp_path / "src"
    (src / "c" / "d.npy").mkdir(parents=True)
    (src / "l").mkdir()
    png = encode(Image.fromarray(smooth_rgb(10, 12, 1)), "PNG")
    names = {
        # 255 bytes each, the longest a name can be; the same stem: one .npy name for both
        "c/" + "x" * 251 + ".png": png,
        "c/" + "x" * 251 + ".jpg": jpeg(2, 10, 12),
        # 255 bytes and no suffix: with .npy too long; alike up to the last byte
        "l/" + "z" * 255: png,
        "l/" + "z" * 254 + "w": encode(Image.fromarray(smooth_rgb(8, 9, 3)), "PNG"),
        # a record's file where another record's folder must go
        "c/d.jpg": jpeg(4, 10, 12),
        "c/d.npy/x.jpg": jpeg(5, 10, 12),
    }
    for rel, data in names.items():
        (src / rel).write_bytes(data)
    out, decoded = tmp_path / "out", tmp_path / "decoded"
    packed = cli("pack", src, out, "-q", cwd=tmp_path)
    assert packed.returncode == 0, packed.stderr
    assert json.loads((out / "manifest.json").read_text())["records"] == len(names)
    r = cli("decode", out, "-o", decoded, "-q", cwd=tmp_path, timeout=180)
    assert r.returncode == 0, r.stderr
    written = [p for p in decoded.rglob("*") if p.is_file()]
    assert len(written) == len(names), sorted(p.relative_to(decoded) for p in written)
    for p in decoded.rglob("*"):
        assert len(p.name.encode()) <= 255, p.name
    assert all(p.suffix == ".npy" for p in written)


# ---------------------------------------------------------------------------------------------
# 6. A damaged record between good ones


def _shard_with_a_cut_jpeg(path: Path) -> Path:
    """good0.jpg, cut.jpg (a JPEG cut to a third: its header whole and true to the record's
    shape, its CRCs valid), good1.jpg, good2.jpg."""
    whole = jpeg(2)
    cut = whole[: len(whole) // 3]
    with Image.open(io.BytesIO(cut)) as im:
        assert im.size == (128, 96)  # the header is sound: only decoding finds the damage
    with ShardWriter(path) as writer:
        for name, data in [
            ("good0.jpg", jpeg(1)),
            ("cut.jpg", cut),
            ("good1.jpg", jpeg(3)),
            ("good2.jpg", jpeg(4)),
        ]:
            writer.write(serialize(jpeg_record(name, data)))
    return path


def test_verify_decode_finds_a_jpeg_cut_past_its_header(tmp_path):
    shard = _shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
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


@pytest.mark.slow
def test_decode_leaves_out_a_cut_jpeg_and_decodes_the_rest(tmp_path):
    shard = _shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
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
    shard = _shard_with_a_cut_jpeg(tmp_path / "s.tfrecord")
    problems: list[Any] = []
    ds = imgrec.dataset(shard, with_filenames=True, on_problem=problems.append)
    names = [filename.numpy().decode() for _image, _label, filename in ds]
    assert names == ["good0.jpg", "good1.jpg", "good2.jpg"]
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].record == 1
    assert f"{shard}, record 1 " in str(problems[0])


# ---------------------------------------------------------------------------------------------
# 7 and 8. Malformed manifests, and manifests pointing outside their folder


def _dataset_with(tmp_path: Path, packed_tree: Any, manifest: Any) -> Path:
    """A copy of a packed dataset (2 shards) under ``tmp_path``, with this manifest."""
    packed, _ = packed_tree(shards=2)
    ds = tmp_path / "ds"
    ds.mkdir()
    for p in packed.iterdir():
        if p.name != "manifest.json":
            shutil.copy(p, ds / p.name)
    (ds / "manifest.json").write_text(
        json.dumps(manifest(json.loads((packed / "manifest.json").read_text())))
    )
    return ds


MALFORMED = {
    "empty shard": (lambda good: {"shards": [{}]}, "shards[0]"),
    "shard a string": (lambda good: {"shards": ["x"]}, "shards[0]"),
    "file a number": (lambda good: {"shards": [{"file": 5}]}, "shards[0]"),
    "records a word": (
        lambda good: {"shards": good["shards"], "stats": {"records": "many"}},
        "stats",
    ),
    "one stats value a word": (
        lambda good: {**good, "stats": {**good["stats"], "records": "many"}},
        "stats.records",
    ),
    "height not a span": (
        lambda good: {**good, "stats": {**good["stats"], "height": "x"}},
        "stats.height",
    ),
    "labels a list": (
        lambda good: {**good, "stats": {**good["stats"], "labels": [1, 2]}},
        "stats.labels",
    ),
}


@pytest.mark.parametrize("command", ["inspect", "verify", "index"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_manifest_is_one_error_line(tmp_path, packed_tree, case, command):
    manifest, field = MALFORMED[case]
    ds = _dataset_with(tmp_path, packed_tree, manifest)
    before = tree_digest(tmp_path)
    r = run(command, ds)
    assert r.exit_code == 1, r.output
    line = one_error_line(r.stderr)
    assert str(ds / "manifest.json") in line
    assert f"malformed manifest: {field}" in line
    assert tree_digest(tmp_path) == before  # index wrote nothing either


OUTSIDE = {
    "file climbs out": ("file", "../victim/v.tfrecord"),
    "file absolute": ("file", "/etc/passwd"),
    "index climbs out": ("index", "../x.idx"),
}


@pytest.mark.parametrize("command", ["inspect", "verify", "index"])
@pytest.mark.parametrize("case", list(OUTSIDE))
def test_manifest_pointing_outside_its_folder_is_refused(tmp_path, packed_tree, case, command):
    key, value = OUTSIDE[case]

    def pointing_out(good: dict[str, Any]) -> dict[str, Any]:
        good["shards"][0][key] = value
        return good

    ds = _dataset_with(tmp_path, packed_tree, pointing_out)
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.copy(next(ds.glob("*.tfrecord")), victim / "v.tfrecord")  # a real shard to index
    before = tree_digest(tmp_path, skip=ds)
    r = run(command, ds)
    assert r.exit_code == 1, r.output
    line = one_error_line(r.stderr)
    assert str(ds / "manifest.json") in line and f"shards[0].{key}" in line
    assert tree_digest(tmp_path, skip=ds) == before
    assert names_in(victim) == ["v.tfrecord"]
    assert not (tmp_path / "x.idx").exists()
    assert not Path("/etc/passwd.idx").exists()


# ---------------------------------------------------------------------------------------------
# 9. kill -9 of the main pack process


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


# ---------------------------------------------------------------------------------------------
# 10. Unfinished datasets


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
