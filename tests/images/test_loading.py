"""Loading an image (images/loading.py): which bytes pass through unchanged, and that they
decode like Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from fixtures import gray16, noise, smooth_rgb
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.images import loading, modes


def sample(mode: str, fmt: str) -> Image.Image:
    rgb = smooth_rgb(9, 11, 1)
    if mode == "I;16":
        return gray16(9, 11, 2)
    if mode == "1":
        return Image.fromarray(noise((9, 11), 3) > 127)
    if mode == "LA":
        return Image.fromarray(np.dstack([noise((9, 11), 4), noise((9, 11), 5)]), "LA")
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, noise((9, 11), 6)]), "RGBA")
    if mode == "P":
        return Image.fromarray(rgb).quantize(16)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "mode", "channels"), sorted(loading.PASSTHROUGH))
def test_passthrough_entries_decode_exactly_like_pillow(tmp_path, fmt, mode, channels):
    src = tmp_path / "src"
    src.mkdir()
    path = src / f"x.{fmt.lower()}"
    sample(mode, fmt).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    out = tmp_path / "out"
    pack(src, out, PackOptions(channels=str(channels)))
    manifest = (out / "manifest.json").read_text()
    assert '"transcoded": []' in manifest  # really passed through
    with Image.open(path) as im:
        im.load()
        want = modes.to_array(im, channels)
    (got,) = list(imgrec.dataset(out, labels=False))
    assert np.array_equal(got.numpy(), tf.image.convert_image_dtype(want, tf.float32).numpy())


def test_palette_with_transparency_passes_through_as_rgba(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sample("P", "PNG").save(src / "p.png", transparency=3)
    out = tmp_path / "out"
    manifest = pack(src, out).to_dict()
    assert manifest["transcoded"] == [] and manifest["stats"]["channels"] == {"4": 1}
    with Image.open(src / "p.png") as im:
        want = np.asarray(im.convert("RGBA"))
    (got,) = list(imgrec.dataset(out, labels=False))
    assert np.array_equal(np.round(got.numpy() * 255).astype(np.uint8), want)


@pytest.mark.parametrize("channels", ["1", "3", "4"])
def test_channel_choice_applies_to_every_format(tmp_path, channels):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(smooth_rgb(8, 8, 1)).save(src / "rgb.png")
    Image.fromarray(smooth_rgb(8, 8, 2)).convert("L").save(src / "gray.jpg")
    for fmt in ("encoded", "raw", "png"):
        out = tmp_path / f"{fmt}{channels}"
        manifest = pack(src, out, PackOptions(format=fmt, channels=channels)).to_dict()
        assert manifest["stats"]["channels"] == {channels: 2}
        shapes = {im.shape[-1] for im in imgrec.dataset(out, labels=False)}
        assert shapes == {int(channels)}


def test_opaque_alpha_is_dropped_by_auto(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(smooth_rgb(8, 8, 1)).convert("RGBA").save(src / "opaque.png")
    manifest = pack(src, tmp_path / "out").to_dict()
    assert manifest["stats"]["channels"] == {"3": 1}


def test_resizing_32_bit_integers_keeps_the_top_of_the_range():
    """float32 cannot hold 2**31 - 1: rounding it there wrapped to the most negative value."""
    from imgrec.images.pixels import Resize, resize

    top = np.iinfo(np.int32).max
    arr = np.full((8, 10, 1), top, np.int32)
    with np.errstate(invalid="raise"):  # the cast warned; fail on it here, whatever filters
        out = resize(arr, Resize(size=(4, 5)))
    assert out.dtype == np.int32 and out.shape == (4, 5, 1)
    assert (out == top).all()  # not wrapped around to the most negative value
