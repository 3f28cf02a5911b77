"""reading/turbo.py: JPEGs decoded through simplejpeg give Pillow's pixels, at full scale and
at 1/2 to 1/8; what it cannot promise that for (CMYK, damaged files, tiny scaled images) it
leaves to Pillow, and RecordSource still reads them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgrec.reading import turbo


def _jpeg(arr: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(buf, "JPEG", **save)
    return buf.getvalue()


def _pillow(data: bytes, ratio: int) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    if ratio > 1:
        im.draft(im.mode, (im.width // ratio, im.height // ratio))
    arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def _detail(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 5 + y) % 256, (x * y // 3) % 256, (y * 7) % 256], -1)
    return np.clip(base + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("save", [
    {"subsampling": 0}, {"subsampling": 1}, {"subsampling": 2}, {"progressive": True},
    {"quality": 40}, {"mode": "L"},
], ids=["444", "422", "420", "progressive", "q40", "gray"])  # fmt: skip
def test_pillows_pixels_at_every_scale(save):
    mode = save.pop("mode", None)
    for shape in [(131, 97), (64, 480), (17, 16)]:
        data = _jpeg(_detail(*shape, seed=len(save)), mode, **save)
        found = turbo.header(data)
        assert found is not None and found[:2] == shape
        for ratio in (1, 2, 4, 8):
            got = turbo.decode(data, found, ratio)
            want = _pillow(data, ratio)
            assert got is not None, (shape, ratio)
            assert got.shape == want.shape and np.array_equal(got, want), (shape, ratio)


def test_what_it_cannot_promise_is_left_to_pillow(tmp_path):
    cmyk = _jpeg(_detail(40, 40, 1), "CMYK")
    assert turbo.header(cmyk) is None  # Pillow's own CMYK conversion
    good = _jpeg(_detail(60, 80, 2))
    cut = good[: len(good) * 2 // 3]  # Pillow reads it, warning; libjpeg's warning here
    assert turbo.header(cut) is not None and turbo.decode(cut, turbo.header(cut), 1) is None
    import simplejpeg

    tiny = _jpeg(_detail(3, 3, 3))  # 2 x 2 at 1/2, and at another of libjpeg-turbo's scales
    picked = simplejpeg.decode_jpeg(tiny, min_height=2, min_width=2)
    assert picked.shape == (2, 2, 3) and not np.array_equal(picked, _pillow(tiny, 2))
    assert turbo.decode(tiny, turbo.header(tiny), 2) is None
    assert np.array_equal(turbo.decode(tiny, turbo.header(tiny), 1), _pillow(tiny, 1))
    assert turbo.header(b"not a jpeg") is None


def test_record_source_reads_them_either_way(tmp_path):
    import imgrec
    from imgrec import pack

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "cmyk.jpg").write_bytes(_jpeg(_detail(40, 40, 1), "CMYK"))
    (src / "tiny.jpg").write_bytes(_jpeg(_detail(12, 14, 3)))
    (src / "plain.jpg").write_bytes(_jpeg(_detail(60, 80, 2)))
    pack(tmp_path / "src", tmp_path / "out")
    want = {
        n.decode(): im
        for im, _, n in imgrec.dataset(
            tmp_path / "out", resize=(3, 5), with_filenames=True
        ).as_numpy_iterator()
    }
    source = imgrec.RecordSource(tmp_path / "out", resize=(3, 5))
    assert len(source) == 3
    for i in range(3):
        example = source[i]
        assert np.array_equal(example["image"], want[example["filename"]]), example["filename"]
