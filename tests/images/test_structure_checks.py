"""images/structure.py: a kept JPEG or PNG is stored without a decode only when its
structure shows that Pillow decodes it; everything else is decoded as before, so what is
packed and what is skipped (and why) never changes."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from corpus import IMAGE, damaged, make_corpus
from fixtures import encode, files_of, smooth_rgb
from PIL import Image, ImageFile

from imgrec import PackOptions, pack
from imgrec.images import structure


def _sound_files() -> dict[str, bytes]:
    rgb = Image.fromarray(smooth_rgb(50, 70, 1))
    return {
        "420.jpg": encode(rgb, "JPEG", quality=90),
        "444.jpg": encode(rgb, "JPEG", quality=95, subsampling=0),
        "422.jpg": encode(rgb, "JPEG", quality=80, subsampling=1),
        "optimized.jpg": encode(rgb, "JPEG", quality=85, optimize=True),
        "gray.jpg": encode(rgb.convert("L"), "JPEG", quality=90),
        "restart_blocks.jpg": encode(rgb, "JPEG", quality=90, restart_marker_blocks=3),
        "restart_rows.jpg": encode(rgb, "JPEG", quality=90, restart_marker_rows=1),
        "odd_size.jpg": encode(rgb.crop((0, 0, 33, 17)), "JPEG", quality=90),
        "rgb.png": encode(rgb, "PNG"),
        "gray.png": encode(rgb.convert("L"), "PNG", optimize=True),
        "bilevel.png": encode(rgb.convert("1"), "PNG"),
        "fast.png": encode(rgb, "PNG", compress_level=1),
    }


def test_sound_files_need_no_decode():
    for name, data in _sound_files().items():
        check = structure.jpeg_decodes if name.endswith(".jpg") else structure.png_decodes
        assert check(data), name
        if name.endswith(".png"):  # inflated a little at a time, as a huge image would be
            assert structure.png_decodes(data, chunk=100), name


def test_layouts_left_to_pillow():
    rgb = Image.fromarray(smooth_rgb(40, 60, 2))
    assert not structure.jpeg_decodes(encode(rgb, "JPEG", progressive=True))
    assert not structure.jpeg_decodes(encode(rgb.convert("CMYK"), "JPEG"))
    png = encode(rgb, "PNG")
    ihdr = png[12:28] + b"\x01"  # interlaced (Adam7), which Pillow does not write
    interlaced = png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]
    assert Image.open(io.BytesIO(interlaced)).info.get("interlace") == 1
    assert not structure.png_decodes(interlaced)
    jpg, png = encode(rgb, "JPEG"), encode(rgb, "PNG")
    assert not structure.jpeg_decodes(jpg[:-2])  # no EOI
    assert not structure.jpeg_decodes(jpg[:-2] + b"\xff\xd0\xff\xd9")  # a restart not asked for
    assert not structure.png_decodes(png[:-12])  # no IEND
    assert not structure.png_decodes(png[:-12] + png[-12:-4])  # IEND without its CRC
    assert not structure.jpeg_decodes(png) and not structure.png_decodes(jpg)
    assert not structure.jpeg_decodes(b"") and not structure.png_decodes(b"")


def test_huffman_tables_libjpeg_refuses_are_left_to_pillow():
    jpg = encode(Image.fromarray(smooth_rgb(40, 60, 4)), "JPEG", quality=90)
    sos = jpg.index(b"\xff\xda")

    def with_dc_table(counts: list[int], values: bytes) -> bytes:
        body = bytes([0x00, *counts]) + values  # class 0 (DC), table 0
        dht = b"\xff\xc4" + struct.pack(">H", 2 + len(body)) + body
        return jpg[:sos] + dht + jpg[sos:]

    # two codes of length 1 use the all-ones code "1": libjpeg's JERR_BAD_HUFF_TABLE
    bad = with_dc_table([2] + [0] * 15, bytes([0, 1]))
    assert _decodes(bad) is False and not structure.jpeg_decodes(bad)
    # a DC symbol over 15
    bad = with_dc_table([1, 1] + [0] * 14, bytes([0, 16]))
    assert _decodes(bad) is False and not structure.jpeg_decodes(bad)
    # counts adding up past the segment
    bad = with_dc_table([0, 3] + [0] * 14, bytes([0, 1]))
    assert not structure.jpeg_decodes(bad)


def _decodes(data: bytes) -> bool | None:
    """None: Pillow cannot even open it (so validate is never asked); else whether a full
    decode and a 1/8-scale draft decode both succeed."""
    try:
        Image.open(io.BytesIO(data))
    except Exception:
        return None
    for draft in (False, True):
        try:
            im = Image.open(io.BytesIO(data))
            if draft and im.format == "JPEG":
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        except Exception:
            return False
    return True


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(8)
    for _ in range(rng.choice([1, 1, 2, 5])):
        p = rng.randrange(len(out))
        if kind == 0:
            return bytes(out[:p])
        if kind == 1:
            out[p] ^= 1 << rng.randrange(8)
        elif kind == 2:
            out[p] = rng.randrange(256)
        elif kind == 3:
            out[p:p] = bytes([rng.randrange(256)])
        elif kind == 4:
            del out[p]
        elif kind == 5:
            out[p] = 0xFF
        elif kind == 6:
            out[p : p + 2] = bytes([0xFF, rng.randrange(256)])
        else:  # the headers: tables, frame, scan
            out[rng.randrange(min(len(out), 700))] = rng.randrange(256)
    return bytes(out)


def _fuzz(seed: int, count: int) -> dict[str, int]:
    rng = random.Random(seed)
    bases = list(_sound_files().items())
    seen = {"accepted": 0, "left to pillow": 0}
    for _ in range(count):
        name, data = rng.choice(bases)
        damaged_data = _mutate(data, rng)
        decodes = _decodes(damaged_data)
        if decodes is None:
            continue
        check = structure.jpeg_decodes if name.endswith(".jpg") else structure.png_decodes
        if name.endswith(".png"):
            assert check(damaged_data) == structure.png_decodes(damaged_data, chunk=500)
        if check(damaged_data):
            assert decodes, f"validate accepts a {name} that Pillow cannot decode"
            seen["accepted"] += 1
        else:
            seen["left to pillow"] += 1
    return seen


def test_damaged_files_are_never_accepted_when_pillow_rejects_them():
    seen = _fuzz(0, 1500)
    assert seen["accepted"] > 100 and seen["left to pillow"] > 100, seen


@pytest.mark.slow
def test_damaged_files_are_never_accepted_when_pillow_rejects_them_many():
    for seed in (1, 2, 3):
        _fuzz(seed, 8000)


def _without_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structure, "jpeg_decodes", lambda data: False)
    monkeypatch.setattr(structure, "png_decodes", lambda data, chunk=0: False)


@pytest.mark.parametrize(
    "options",
    [{}, {"channels": "3"}, {"format": "raw", "channels": "3", "max_side": 16}],
    ids=["encoded", "channels3", "raw"],
)
def test_pack_is_the_same_with_and_without_validate(tmp_path, monkeypatch, options):
    """The same bytes and the same skips, with the same reasons, as when every kept file is
    decoded by Pillow: over the damaged files, the odd-image corpus and the hostile one."""
    src = tmp_path / "src"
    expect = damaged(src / "damaged")
    make_corpus(src)
    opts = PackOptions(workers=1, shards=2, **options)
    calls = {"accepted": 0}
    real = structure.jpeg_decodes

    def counting(data: bytes) -> bool:
        ok = real(data)
        calls["accepted"] += ok
        return ok

    monkeypatch.setattr(structure, "jpeg_decodes", counting)
    fast = pack(src, tmp_path / "fast", opts)
    if not options:
        assert calls["accepted"] >= 10  # the sound JPEGs and those damaged harmlessly
    _without_validate(monkeypatch)
    slow = pack(src, tmp_path / "slow", opts)
    assert files_of(tmp_path / "fast") == files_of(tmp_path / "slow")
    assert fast.to_dict() | {"source": ""} == slow.to_dict() | {"source": ""}
    reasons = {Path(n.path).name: n.reason for n in fast.skipped}
    for name, outcome in expect.items():
        if outcome == IMAGE:
            assert name not in reasons, (name, reasons.get(name))
        else:
            assert reasons[name].startswith(f"{outcome}: "), (name, reasons[name])
    assert reasons["truncated.jpg"].startswith("truncated: OSError: image file is truncated (")
    assert reasons["garbage_in_idat.png"] == (
        "corrupt: OSError: unrecognized data stream contents when reading image file"
    )


def test_a_kept_png_is_stored_as_its_own_bytes_without_a_decode(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    arr = smooth_rgb(30, 40, 3)
    data = encode(Image.fromarray(arr), "PNG")
    (src / "a.png").write_bytes(data)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    manifest = pack(src, tmp_path / "out", PackOptions(workers=1))
    shard = next((tmp_path / "out").glob("*.tfrecord")).read_bytes()
    assert data in shard
    assert (manifest.stats.height, manifest.stats.width) == ([30, 30], [40, 40])
