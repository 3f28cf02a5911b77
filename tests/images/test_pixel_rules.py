"""The pixel rules, written twice (NumPy for pack in images/pixels.py, graph code for the
readers in reading/graph.py), give the same pixels: every orientation, every channel
conversion, every integer depth; and what a reader decodes equals what pack stores raw."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import imgrec
from imgrec import PackOptions
from imgrec.images.pixels import orient, shape_channels
from imgrec.reading.graph import apply_orientation, convert_channels

RNG = np.random.default_rng(23)


def _random(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "float32":
        return RNG.random(shape, dtype=np.float32)
    top = np.iinfo(dtype).max
    arr = RNG.integers(0, top, shape, endpoint=True, dtype=np.int64).astype(dtype)
    arr.flat[:4] = [0, top, top, top]  # the extremes, where rounding overflows first
    return arr


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_the_same_in_numpy_and_in_the_graph(orientation, dtype):
    arr = _random((5, 7, 3), dtype)  # not square: a transpose shows
    graph = apply_orientation(tf, tf.constant(arr), tf.constant(orientation, tf.int64))
    np.testing.assert_array_equal(graph.numpy(), orient(arr, orientation))


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("have", [1, 3, 4])
@pytest.mark.parametrize("want", [1, 3, 4])
def test_channel_conversion_is_the_same_in_numpy_and_in_the_graph(have, want, dtype):
    arr = _random((16, 16, have), dtype)
    base = 1 if have == 1 else 3
    numpy = shape_channels(arr, base, want)
    graph = convert_channels(tf, tf.constant(arr), have, want).numpy()
    assert graph.dtype == numpy.dtype and graph.shape == numpy.shape
    np.testing.assert_array_equal(graph, numpy)


def test_gray_by_luma_is_pillows_own():
    rgb = _random((32, 32, 3), "uint8")
    pillow = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    graph = convert_channels(tf, tf.constant(rgb), 3, 1).numpy()[..., 0]
    np.testing.assert_array_equal(graph, pillow)
    np.testing.assert_array_equal(shape_channels(rgb, 3, 1)[..., 0], pillow)


def _photo(h: int, w: int) -> np.ndarray:
    """Smooth colour with some detail: what a JPEG of a photo holds."""
    y, x = np.mgrid[0:h, 0:w]
    r = 128 + 100 * np.sin(x / 5.0)
    g = 128 + 100 * np.cos(y / 7.0)
    b = (x * 3 + y * 2) % 256
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def _save(im: Image.Image, path, fmt: str, orientation: int = 1) -> None:
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    im.save(path, fmt, exif=exif.tobytes()) if fmt == "JPEG" else im.save(path, fmt)


MODES = {
    "L": lambda a: Image.fromarray(a).convert("L"),
    "LA": lambda a: Image.fromarray(a).convert("LA"),
    "RGB": lambda a: Image.fromarray(a),
    "RGBA": lambda a: Image.fromarray(np.dstack([a, a[..., :1]]), "RGBA"),
    "P": lambda a: Image.fromarray(a).quantize(16),
    "I;16": lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257).convert("I;16"),
}


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_what_the_reader_decodes_is_what_pack_stores_raw(tmp_path, channels):
    """Encoded records (PNG kept as it is, JPEG with EXIF orientations), read with
    ``channels``, equal pack's raw records made with the same ``channels`` by NumPy."""
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    base = _photo(12, 18)
    for mode, make in MODES.items():
        _save(make(base), src / f"{mode.replace(';', '')}.png", "PNG")
    for orientation in range(1, 9):
        _save(Image.fromarray(base), src / f"o{orientation}.jpg", "JPEG", orientation)
    _save(Image.fromarray(base).convert("L"), src / "gray.jpg", "JPEG", 6)
    raw, enc = tmp_path / "raw", tmp_path / "enc"
    imgrec.pack(src.parent, raw, PackOptions(format="raw", channels=str(channels)))
    imgrec.pack(src.parent, enc, PackOptions())

    def read(out):
        return {
            name.numpy().decode(): image.numpy()
            for image, name in imgrec.dataset(
                out, labels=False, with_filenames=True, channels=channels
            )
        }

    want, got = read(raw), read(enc)
    assert len(want) == len(got) == len(MODES) + 9
    for name in sorted(want):
        assert got[name].shape == want[name].shape, name
        # float32 of equal integers: x/255 or x/65535 of the same x, bit for bit
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
