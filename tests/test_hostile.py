"""Hostile and odd inputs: each is packed, ignored or skipped with its specific reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import files_of, run, smooth_rgb
from PIL import Image

import imgrec
from imgrec import InputError, PackOptions, pack
from imgrec.core import storage
from imgrec.images import loading

PIXEL_RULES = Path(__file__).parent.parent / "docs" / "pixel-rules.md"


def one_image(folder: Path, name: str = "a.png", size: tuple[int, int] = (12, 10)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(smooth_rgb(size[1], size[0], 1)).save(path, "PNG")
    return path


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


@pytest.mark.parametrize(
    ("mode", "size", "want"),
    [
        ("stretch", (10, 20), (10, 20)),  # (height, width)
        ("fit", (20, 20), (15, 20)),
        ("fill", (20, 20), (20, 20)),
        ("pad", (20, 20), (20, 20)),
    ],
)
def test_resize_modes(tmp_path, mode, size, want):
    src = tmp_path / "src"
    one_image(src / "a", size=(40, 30))  # 4:3
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(resize=size, resize_mode=mode)).to_dict()
    (image,) = list(imgrec.dataset(out, labels=False))
    assert image.shape[:2] == want
    assert manifest["transcoded"][0]["reason"] == "resized, so transcoded to PNG"
    if mode == "pad":  # a 20x15 picture centred between black bands
        arr = image.numpy()
        assert arr[:2].max() == 0 and arr[-2:].max() == 0 and arr[3:17].max() > 0


def test_one_size_order_height_width_in_python_and_wxh_on_the_command_line(tmp_path):

    src = tmp_path / "src"
    one_image(src / "a", size=(40, 30))
    by_cli = run("pack", src, tmp_path / "cli", "--resize", "20x10")  # width 20, height 10
    assert by_cli.exit_code == 0, by_cli.output
    pack(src, tmp_path / "py", PackOptions(resize=(10, 20)))  # (height, width), as dataset()
    assert files_of(tmp_path / "cli") == files_of(tmp_path / "py")
    (image,) = list(imgrec.dataset(tmp_path / "py", labels=False, resize=(10, 20)))
    assert image.shape[:2] == (10, 20)
    # The manifest records [width, height] as every manifest before did: old ones still read.
    recorded = json.loads((tmp_path / "py" / "manifest.json").read_text())["options"]
    assert recorded["resize"] == [20, 10]
    assert imgrec.read_manifest(tmp_path / "py").options.resize == (10, 20)


def test_resize_matches_pillow_lanczos_and_keeps_unchanged_bytes(tmp_path):
    src = tmp_path / "src"
    path = one_image(src / "a", size=(40, 30))
    small = one_image(src / "a", "small.png", size=(16, 12))
    out = tmp_path / "out"
    pack(src, out, PackOptions(format="raw", max_side=20))
    got = {
        f.numpy().decode(): im.numpy()
        for im, f in imgrec.dataset(out, labels=False, with_filenames=True)
    }
    with Image.open(path) as im:
        want = np.asarray(im.resize((20, 15), Image.Resampling.LANCZOS))
    assert np.array_equal(np.round(got["a/a.png"] * 255).astype(np.uint8), want)
    assert got["a/small.png"].shape == (12, 16, 3)  # never enlarged
    out2 = tmp_path / "out2"
    manifest = pack(src, out2, PackOptions(max_side=20)).to_dict()
    assert [t["path"] for t in manifest["transcoded"]] == ["a/a.png"]  # small.png kept as is
    assert small.read_bytes() in (out2 / manifest["shards"][0]["file"]).read_bytes()


def test_sixteen_bit_resize_stays_sixteen_bit(tmp_path):
    from fixtures import gray16

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    gray16(30, 40, 1).save(src / "deep.png")
    out = tmp_path / "out"
    manifest = pack(src.parent, out, PackOptions(resize=(15, 20))).to_dict()
    assert manifest["stats"]["dtypes"] == {"uint16": 1}


def test_resize_and_max_side_together_are_refused(tmp_path):
    src = tmp_path / "src"
    one_image(src / "a")
    with pytest.raises(InputError, match="not both"):
        pack(src, tmp_path / "out", PackOptions(resize=(4, 4), max_side=3))


def _readme_table(heading: str) -> list[list[str]]:
    text = PIXEL_RULES.read_text()
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # without the header row


def test_readme_mode_table_matches_the_code():
    rows = _readme_table("# Pixel rules")
    documented = {}
    for cells in rows:
        for mode in re.findall(r"`([^`]+)`", cells[0]):
            documented[mode] = cells
    assert set(documented) == set(loading.MODES)
    for name, mode in loading.MODES.items():
        cells = documented[name]
        assert cells[2] == mode.dtype, name
        base = cells[1].split(",")[0]
        assert base == str(mode.base), name
        assert ("4 with real" in cells[1]) == mode.alpha, name


def test_readme_skip_reasons_match_the_code():
    rows = _readme_table("## Skip reasons")
    assert {r[0].strip("`"): r[1] for r in rows} == loading.REASONS
