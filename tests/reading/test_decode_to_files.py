"""imgrec decode's files: one per record, under long, clashing and hostile record names,
never outside OUT."""

from __future__ import annotations

import json

import pytest
from fixtures import encode, run, smooth_rgb
from PIL import Image
from processes import cli
from samples import jpeg, record, shard_of


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


def test_decode_never_writes_outside_out_or_over_another_record(tmp_path):
    names = ["../../escape.png", "/etc/absolute.png", "", "nul\0byte.png", "same.png", "same.png",
             "a/../../up.png"]  # fmt: skip
    shard = shard_of(tmp_path / "s.tfrecord", *[record(filename=n) for n in names])
    out = tmp_path / "deep" / "out"
    r = run("decode", shard, "-o", out)
    assert r.exit_code == 0, r.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert len(written) == len(names)
    assert all(not name.startswith("..") for name in written)
    assert "same.npy" in written and "same-00000005.npy" in written
    assert not (tmp_path / "escape.npy").exists() and not (tmp_path / "deep" / "up.npy").exists()


@pytest.mark.slow
@pytest.mark.parametrize("channels", [3, 4])
def test_decode_to_png_keeps_16_bit_colour(tmp_path, channels):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(channels)
    deep = rng.integers(0, 65536, (6, 7, channels), dtype=np.uint16)
    (tmp_path / "src" / "c").mkdir(parents=True)
    (tmp_path / "src" / "c" / "deep.png").write_bytes(tf.io.encode_png(deep).numpy())
    out, decoded = tmp_path / "out", tmp_path / "decoded"
    assert run("pack", tmp_path / "src", out).exit_code == 0
    r = run("decode", out, "-o", decoded, "--to", "png")
    assert r.exit_code == 0, r.output
    (written,) = decoded.rglob("*.png")
    back = tf.io.decode_png(written.read_bytes(), dtype=tf.uint16).numpy()
    assert back.dtype == np.uint16 and back.shape == deep.shape
    assert np.array_equal(back, deep)  # every bit kept, not shifted to 8 bits


def test_decode_to_png_keeps_each_images_depth_in_a_dataset_of_both(tmp_path):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    shallow = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    (tmp_path / "src" / "c").mkdir(parents=True)
    (tmp_path / "src" / "c" / "deep.png").write_bytes(tf.io.encode_png(deep).numpy())
    (tmp_path / "src" / "c" / "shallow.png").write_bytes(tf.io.encode_png(shallow).numpy())
    out, decoded = tmp_path / "out", tmp_path / "decoded"
    assert run("pack", tmp_path / "src", out).exit_code == 0
    r = run("decode", out, "-o", decoded, "--to", "png")
    assert r.exit_code == 0, r.output
    for name, pixels in (("deep", deep), ("shallow", shallow)):
        data = (decoded / "c" / f"{name}.png").read_bytes()
        assert data[24] == pixels.itemsize * 8  # the PNG's bit depth
        back = tf.io.decode_png(data, dtype=tf.as_dtype(pixels.dtype)).numpy()
        assert np.array_equal(back, pixels)  # the 16-bit one was cut to 8 bits


def test_decode_of_a_dataset_of_no_records_writes_nothing_and_says_0(tmp_path):
    from samples import empty_dataset

    out = empty_dataset(tmp_path)
    r = run("decode", out, "--stats", "-o", tmp_path / "arrays")
    assert r.exit_code == 0, r.output
    assert "Decoded 0 records" in r.stdout and "Wrote 0 .npy files" in r.stdout
    assert not (tmp_path / "arrays").exists() and r.stderr == ""
    r = run("decode", out, "--stats", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["records"] == 0
