"""Hostile and odd inputs: each is packed, ignored or skipped with its specific reason."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from corpus import _bomb_png
from fixtures import encode, run, smooth_rgb
from PIL import Image
from samples import gif_with_a_frame_of, icns, ico_of, one_image

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import PackOptions, pack
from imgrec.core import storage
from imgrec.images import loading


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    src = tmp_path / "src"
    one_image(src / "a")
    locked = one_image(src / "a", "locked.png")
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads everything: make the read fail the way a permission error would
        real_open = open

        def guarded(path, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied")
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(storage, "open", guarded, raising=False)
    manifest = pack(src, tmp_path / "out").to_dict()
    assert manifest["skipped"] == [
        {"path": "a/locked.png", "reason": "unreadable: Permission denied"}
    ]
    assert manifest["records"] == 1


def test_record_over_the_protobuf_limit_is_refused_before_writing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    one_image(src / "a", size=(8, 8))
    one_image(src / "a", "big.png", size=(40, 40))
    monkeypatch.setattr(loading, "MAX_PAYLOAD_BYTES", 8 * 8 * 3)
    manifest = pack(src, tmp_path / "out", PackOptions(format="raw")).to_dict()
    assert [s["path"] for s in manifest["skipped"]] == ["a/big.png"]
    assert manifest["skipped"][0]["reason"].startswith("too-large: 4800 bytes")


def test_max_pixels_skips_without_decoding(tmp_path):
    src = tmp_path / "src"
    one_image(src / "a", size=(10, 10))
    one_image(src / "a", "wide.png", size=(30, 10))
    manifest = pack(src, tmp_path / "out", PackOptions(max_pixels=200)).to_dict()
    assert manifest["skipped"] == [
        {"path": "a/wide.png", "reason": "too-many-pixels: 30x10 is over --max-pixels 200"}
    ]


@pytest.mark.slow  # the 1100-level tree: discover.walk resolves every level, O(depth**2) lstats
def test_symlinks_loops_and_deep_trees(tmp_path):
    src = tmp_path / "src"
    one_image(src / "a")
    (src / "a" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (src / "a" / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (src / "a" / "loop").symlink_to(src, target_is_directory=True)
    deep = src / "b"
    deep.mkdir()
    levels = [deep]
    for _ in range(1100):  # deeper than Python's recursion limit (made without recursion)
        deep = deep / "d"
        deep.mkdir()
        levels.append(deep)
    one_image(deep, "deep.png")
    linked = tmp_path / "elsewhere"
    one_image(linked, "linked.png")
    (src / "c").symlink_to(linked, target_is_directory=True)
    manifest = pack(src, tmp_path / "out").to_dict()
    names = sorted(r["path"] for r in manifest["skipped"])
    assert names == ["a/gone.jpg"]
    assert manifest["skipped"][0]["reason"].startswith("broken-symlink")
    assert manifest["records"] == 3  # a.png, the deep one, the linked folder's (once)
    assert manifest["labels"] == ["a", "b", "c"]
    # shutil.rmtree (pytest's clean-up) recurses per level: take the tree down by hand.
    (deep / "deep.png").unlink()
    for level in reversed(levels):
        level.rmdir()


@pytest.mark.slow
def test_odd_file_names_survive_pack_and_decode(tmp_path):
    src = tmp_path / "src"
    names = ["with space.png", "ünïcödé 画像.png", "new\nline.png", "tab\there.png"]
    for n in names:
        one_image(src / "k", n)
    raw_name = os.fsdecode(b"latin1-\xe9t\xe9.png")  # not valid UTF-8
    one_image(src / "k", raw_name)
    out = tmp_path / "out"
    manifest = pack(src, out).to_dict()
    assert manifest["records"] == 5
    # The manifest is valid JSON (the non-UTF-8 name is kept as \\udcXX escapes).
    assert json.loads((out / "manifest.json").read_text())["records"] == 5
    fns = {f.numpy() for _, f in imgrec.dataset(out, labels=False, with_filenames=True)}
    assert fns == {f"k/{n}".encode() for n in names} | {b"k/latin1-\xe9t\xe9.png"}
    arrays = tmp_path / "arrays"
    result = subprocess.run(
        [sys.executable, "-m", "imgrec", "decode", str(out), "-o", str(arrays), "-q"],
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    written = {os.fsencode(p.name) for p in (arrays / "k").iterdir()}
    assert b"new\nline.npy" in written and b"latin1-\xe9t\xe9.npy" in written


def test_wrong_extensions_are_read_by_content(tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    Image.fromarray(smooth_rgb(8, 9, 2)).save(src / "really_png.jpg", "PNG")
    Image.fromarray(smooth_rgb(8, 9, 3)).save(src / "really_jpeg.png", "JPEG")
    Image.fromarray(smooth_rgb(8, 9, 4)).save(src / "README", "GIF")
    manifest = pack(src.parent, tmp_path / "out").to_dict()
    assert manifest["records"] == 3 and manifest["skipped"] == []
    assert manifest["stats"]["formats"] == {"jpeg": 1, "png": 2}


def test_no_traceback_for_a_folder_of_nothing_but_junk(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"")
    (src / "b.txt").write_text("hi")
    result = subprocess.run(
        [sys.executable, "-m", "imgrec", "pack", str(src), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "no images to pack (1 files ignored, 1 skipped)" in result.stderr


def small_source(root: Path, n: int = 6) -> Path:
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_rgb(12 + i, 16, i)).save(folder / f"{i}.png")
    return root


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
    (src / "a" / "liar.icns").write_bytes(icns(png))
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
    (src / "a" / "bomb.icns").write_bytes(icns(_huge_gray_png(20000)))
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


@pytest.mark.parametrize("max_pixels", [89_478_485, 10**10])
def test_a_skip_by_pillow_s_own_guard_names_the_size_and_the_limit_in_force(tmp_path, max_pixels):
    src = small_source(tmp_path / "src", 2)
    (src / "a" / "frame.gif").write_bytes(gif_with_a_frame_of(65535, 65535))
    (src / "a" / "inner.ico").write_bytes(ico_of(_bomb_png(65535, 66601)))
    (src / "a" / "inner.icns").write_bytes(icns(_bomb_png(65535, 66601)))
    manifest = pack(src, tmp_path / "out", PackOptions(max_pixels=max_pixels)).to_dict()
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    sizes = {
        "a/frame.gif": "65535x65535",
        "a/inner.ico": "65535x66601",
        "a/inner.icns": "65535x66601",
    }
    assert set(reasons) == set(sizes)
    for path, size in sizes.items():
        if max_pixels < 65535 * 65535:
            want = f"too-many-pixels: it holds a {size} image, over --max-pixels {max_pixels}"
            assert reasons[path] == want
        else:  # the user's limit is higher: Pillow's own stopped it, and the reason says so
            want = f"too-many-pixels: it holds a {size} image: under --max-pixels {max_pixels},"
            assert reasons[path].startswith(want)
            assert "over Pillow's own limit of 178956970 pixels" in reasons[path]


def _beyond_path_max(top: Path, files: dict[str, bytes]) -> str:
    """Folders of 200-byte names under ``top`` until their path passes PATH_MAX (4096),
    made relative to each parent's descriptor (no call takes the whole path), with
    ``files`` at the bottom; their relative folder, "/"-separated."""
    name, parts = "d" * 200, []
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while len(os.fsencode(top)) + 201 * len(parts) <= 4200:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, parts = inner, [*parts, name]
        for file, data in files.items():
            out = os.open(file, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)
    finally:
        os.close(fd)
    return "/".join(parts)


def test_an_image_whose_path_is_over_path_max_is_skipped_and_verify_flags_it(tmp_path):
    src = small_source(tmp_path / "src", 2)
    jpg = encode(Image.fromarray(smooth_rgb(8, 8, 1)), "JPEG")
    deep = "a/" + _beyond_path_max(src / "a", {"deep.jpg": jpg, "notes.txt": b"hi"})
    assert len(os.fsencode(src / deep)) > 4096
    manifest = pack(src, tmp_path / "out").to_dict()
    assert manifest["records"] == 2 and manifest["ignored"] == 1  # notes.txt
    [skipped] = manifest["skipped"]
    assert skipped["path"] == f"{deep}/deep.jpg"
    assert skipped["reason"].startswith("path-too-long: the path is ")
    assert "move the folders holding it higher up" in skipped["reason"]
    assert run("verify", tmp_path / "out", "--against", src).exit_code == 0  # listed: known
    # One the dataset does not account for (added since, or packed by an imgrec that did
    # not see it): verify cannot read it, so it is not OK.
    _beyond_path_max(src / "b", {"late.png": jpg})
    r = run("verify", tmp_path / "out", "--against", src)
    assert r.exit_code == 1, r.output
    [line] = [x for x in r.stdout.splitlines() if x.startswith("changed: b/")]
    assert line.startswith(f"changed: b/{deep[2:]}/late.png: in the source, but neither in")
    assert "the dataset nor listed as skipped, and it cannot be read (path-too-long: " in line
