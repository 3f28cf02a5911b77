"""Reading faster: JPEGs decoded at a reduced DCT scale, fused crops, the integer cache.
Each option must give the pixels it promises, not only speed."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from fixtures import smooth_rgb
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.reading.crops import window_function
from imgrec.reading.graph import jpeg_ratio
from imgrec.reading.tfdata import host_dataset


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """JPEGs of two sizes (so the DCT scale is chosen per record) and one PNG."""
    root = tmp_path_factory.mktemp("big")
    src = root / "src" / "a"
    src.mkdir(parents=True)
    for i, (h, w) in enumerate([(960, 1280), (960, 1280), (500, 700)]):
        Image.fromarray(smooth_rgb(h, w, i)).save(src / f"p{i}.jpg", quality=92)
    Image.fromarray(smooth_rgb(300, 400, 9)).save(src / "q.png")
    pack(root / "src", root / "out")
    return root


def by_name(ds) -> dict[str, np.ndarray]:
    return {fn.numpy().decode(): im.numpy() for im, _, fn in ds}


def test_the_dct_scale_never_goes_below_the_size_asked_for():
    assert jpeg_ratio((960, 1280), (224, 224)) == 4
    assert jpeg_ratio((3000, 4000), (224, 224)) == 8
    assert jpeg_ratio((500, 700), (224, 224)) == 2
    assert jpeg_ratio((447, 700), (224, 224)) == 2  # libjpeg rounds up: 224 rows
    assert jpeg_ratio((445, 700), (224, 224)) == 1  # 223 rows at 1/2: too few
    assert jpeg_ratio((100, 100), (224, 224)) == 1  # enlarging: full scale


def test_resized_jpegs_are_the_dct_scaled_decode_resized(big):
    got = by_name(host_dataset(big / "out", resize=(224, 224)))
    for name, ratio in (("a/p0.jpg", 4), ("a/p2.jpg", 2)):
        data = tf.io.read_file(str(big / "src" / name))
        scaled = tf.io.decode_jpeg(data, ratio=ratio, dct_method="INTEGER_ACCURATE")
        want = tf.saturate_cast(tf.round(tf.image.resize(tf.cast(scaled, tf.float32),
                                                         (224, 224))), tf.uint8)  # fmt: skip
        np.testing.assert_array_equal(got[name], want.numpy())
    assert got["a/q.png"].shape == (224, 224, 3)  # PNGs are decoded whole


def test_a_scaled_decode_is_closer_to_an_antialiased_resize_than_plain_bilinear(big):
    got = by_name(host_dataset(big / "out", resize=(120, 160)))["a/p0.jpg"].astype(float)
    full = np.asarray(Image.open(big / "src" / "a" / "p0.jpg"))
    reference = np.asarray(Image.fromarray(full).resize((160, 120), Image.Resampling.LANCZOS))
    bilinear = tf.image.resize(full.astype(np.float32), (120, 160)).numpy()

    def psnr(a: np.ndarray) -> float:
        return float(10 * np.log10(255**2 / np.mean((a - reference.astype(float)) ** 2)))

    assert psnr(got) > psnr(bilinear)


@pytest.mark.parametrize("crop", ["random", "center"])
def test_crop_windows_lie_inside_the_image(crop):
    for seed in range(200):
        fn = window_function(tf, crop, (224, 224), tf.constant([seed, 7], tf.int64))
        for h, w in ((375, 500), (500, 375), (50, 900)):
            y, x, ch, cw = fn(tf.constant([h, w])).numpy()
            assert 0 <= y and 0 <= x and ch > 0 and cw > 0 and y + ch <= h and x + cw <= w
            if crop == "center":
                assert ch == cw == int(224 / 256 * min(h, w))


def test_a_fused_crop_decodes_the_same_pixels_as_decode_then_crop(big):
    got = by_name(host_dataset(big / "out", resize=(256, 256), crop="center"))
    full = np.asarray(Image.open(big / "src" / "a" / "p2.jpg").convert("RGB"))
    side = int(256 / 288 * 500)  # 444: too few rows at 1/2 scale, so decoded at full scale
    y, x = (500 - side + 1) // 2, (700 - side + 1) // 2
    cropped = tf.constant(full[y : y + side, x : x + side], tf.float32)
    want = tf.saturate_cast(tf.round(tf.image.resize(cropped, (256, 256))), tf.uint8).numpy()
    # libjpeg upsamples the chroma at a crop's edges as at an image's: the border differs.
    assert np.abs(got["a/p2.jpg"].astype(int) - want)[3:-3, 3:-3].max() <= 1


def test_a_crop_window_of_a_large_image_is_decoded_at_a_reduced_scale(big):
    got = by_name(host_dataset(big / "out", resize=(64, 64), crop="center"))
    side = int(64 / 96 * 500)  # 333 of 500x700: at 1/4 scale, 83 >= 64
    y, x = (500 - side + 1) // 2, (700 - side + 1) // 2
    data = tf.io.read_file(str(big / "src" / "a" / "p2.jpg"))
    quarter = tf.io.decode_jpeg(data, ratio=4, dct_method="INTEGER_ACCURATE")
    window = tf.cast(quarter[y // 4 : y // 4 + side // 4, x // 4 : x // 4 + side // 4], tf.float32)
    want = tf.saturate_cast(tf.round(tf.image.resize(window, (64, 64))), tf.uint8).numpy()
    np.testing.assert_array_equal(got["a/p2.jpg"], want)


def test_random_crops_repeat_with_a_seed_and_change_each_epoch(big):
    def epoch(ds) -> dict[str, np.ndarray]:
        return by_name(ds)

    ds = host_dataset(big / "out", resize=(32, 32), crop="random", seed=3)
    first, second = epoch(ds), epoch(ds)
    again = epoch(host_dataset(big / "out", resize=(32, 32), crop="random", seed=3))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not all(np.array_equal(first[k], second[k]) for k in first)


def test_the_cache_gives_the_same_integers_as_no_cache(big, tmp_path):
    plain = list(host_dataset(big / "out", resize=(40, 40), batch_size=2))
    for cache in (True, str(tmp_path / "cache")):
        ds = host_dataset(big / "out", resize=(40, 40), batch_size=2, cache=cache)
        for _ in range(2):  # the first epoch fills it, the second reads from it
            for (a, _, fa), (b, _, fb) in zip(plain, ds, strict=True):
                assert b.dtype == tf.uint8 and np.array_equal(a, b) and np.array_equal(fa, fb)
    assert list(tmp_path.glob("cache*"))  # the file cache was written


def test_crop_and_cache_options_are_checked(big):
    with pytest.raises(imgrec.ImgrecError, match="needs resize"):
        imgrec.dataset(big / "out", crop="center")
    with pytest.raises(imgrec.ImgrecError, match="drawn anew each epoch"):
        imgrec.dataset(big / "out", resize=(8, 8), crop="random", cache=True)
    with pytest.raises(imgrec.ImgrecError, match="use one of random, center"):
        imgrec.dataset(big / "out", resize=(8, 8), crop="middle")


@pytest.fixture(scope="module")
def raw_sets(tmp_path_factory):
    """Raw packs at one size: 8-bit RGB (with gray images converted at pack time) and
    16-bit gray; and one of mixed sizes (which must take the per-record path)."""
    root = tmp_path_factory.mktemp("raw")
    for cls in ("a", "b"):
        (root / "src" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(smooth_rgb(30 + 7 * i, 40, i)).save(root / "src" / cls / f"{i}.png")
    Image.fromarray(smooth_rgb(30, 40, 8)).convert("L").save(root / "src" / "b" / "g.png")
    (root / "deep" / "a").mkdir(parents=True)
    for i in range(5):
        deep = (smooth_rgb(20, 24, i)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
        Image.fromarray(deep).save(root / "deep" / "a" / f"{i}.png")
    pack(root / "src", root / "rgb", PackOptions(format="raw", resize=(24, 32), channels="3"))
    pack(root / "deep", root / "gray16", PackOptions(format="raw"))
    pack(root / "src", root / "mixed", PackOptions(format="raw", channels="3"))
    return root


def _calls(monkeypatch) -> list[tuple]:
    import imgrec.reading.tfdata

    calls: list[tuple] = []
    real = imgrec.reading.tfdata.decode_raw_batch

    def counting(tf_, serialized, dtype, shape):
        calls.append((dtype, shape))
        return real(tf_, serialized, dtype, shape)

    monkeypatch.setattr(imgrec.reading.tfdata, "decode_raw_batch", counting)
    return calls


RAW_SETS = [("rgb", tf.uint8, (24, 32, 3)), ("gray16", tf.uint16, (20, 24, 1))]


@pytest.mark.parametrize(("name", "dtype", "shape"), RAW_SETS)
def test_raw_records_of_one_size_are_decoded_a_batch_at_a_time(
    raw_sets, monkeypatch, name, dtype, shape
):
    one_by_one = list(imgrec.dataset(raw_sets / name, with_filenames=True, shuffle=True, seed=4))
    calls = _calls(monkeypatch)
    for resize in (None, shape[:2]):  # resizing to the size every record has is no resize
        calls.clear()
        batched = imgrec.dataset(raw_sets / name, batch_size=3, resize=resize,
                                 with_filenames=True, shuffle=True, seed=4)  # fmt: skip
        assert calls == [(dtype, shape)]
        assert batched.element_spec[0].shape.as_list() == [None, *shape]
        epoch = list(batched)  # once: each pass over a shuffled dataset is a new order
        images, labels, names = (np.concatenate([b[k].numpy() for b in epoch]) for k in range(3))
        assert len(images) == len(one_by_one) == len(names)
        for (im, lab, fn), i in zip(one_by_one, range(len(images)), strict=True):
            assert fn.numpy() == names[i] and lab.numpy() == labels[i]
            np.testing.assert_array_equal(im.numpy(), images[i])


def test_raw_records_that_need_work_per_record_take_the_per_record_path(raw_sets, monkeypatch):
    calls = _calls(monkeypatch)
    for ds in (
        imgrec.dataset(raw_sets / "mixed", batch_size=2, resize=(16, 16)),  # sizes differ
        imgrec.dataset(raw_sets / "rgb", batch_size=2, resize=(12, 16)),  # a real resize
        imgrec.dataset(raw_sets / "rgb", batch_size=2, channels=1),  # a channel change
        imgrec.dataset(raw_sets / "rgb", batch_size=2, resize=(24, 32), crop="center"),
    ):
        assert sum(1 for _ in ds) > 0
    assert calls == []


def test_pngs_among_jpegs_decode_to_their_own_pixels(big):
    """JPEGs and PNGs together go through one decoder: the PNG's pixels must be exact."""
    got = by_name(host_dataset(big / "out", resize=(300, 400)))
    np.testing.assert_array_equal(
        got["a/q.png"], np.asarray(Image.open(big / "src" / "a" / "q.png"))
    )
    gray = by_name(host_dataset(big / "out", channels=1))["a/q.png"]
    # To gray by the one luma rule, pack's (Pillow's), not libpng's own (off by 1 in half
    # of these pixels).
    want = np.asarray(Image.open(big / "src" / "a" / "q.png").convert("L"))[..., None]
    np.testing.assert_array_equal(gray, want)


def test_a_dct_scale_shared_by_every_size_is_the_one_each_would_get(tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i, (h, w) in enumerate([(960, 1280), (1000, 1300)]):  # 1/4 for both at 224
        Image.fromarray(smooth_rgb(h, w, i)).save(src / f"p{i}.jpg", quality=90)
    pack(tmp_path / "src", tmp_path / "out")
    got = by_name(host_dataset(tmp_path / "out", resize=(224, 224)))
    for name in got:
        scaled = tf.io.decode_jpeg(tf.io.read_file(str(tmp_path / "src" / name)), ratio=4,
                                   dct_method="INTEGER_ACCURATE")  # fmt: skip
        want = tf.saturate_cast(tf.round(tf.image.resize(tf.cast(scaled, tf.float32),
                                                         (224, 224))), tf.uint8)  # fmt: skip
        np.testing.assert_array_equal(got[name], want.numpy())
