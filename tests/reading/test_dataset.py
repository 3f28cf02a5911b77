"""Decoding back to float: imgrec.dataset (the path `imgrec decode` uses)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

import imgrec
from imgrec import DependencyError, PackOptions, pack


def decoded(out, **kw) -> dict[str, tuple[np.ndarray, int]]:
    ds = imgrec.dataset(out, with_filenames=True, **kw)
    return {fn.numpy().decode(): (im.numpy(), int(lab)) for im, lab, fn in ds}


def pillow_hwc(path) -> np.ndarray:
    with Image.open(path) as im:
        arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def test_png_and_raw_decode_to_source_over_255_or_65535(tree, tmp_path):
    src, files = tree
    for fmt in ("encoded", "raw"):
        out = tmp_path / fmt
        pack(src, out, PackOptions(format=fmt))
        images = decoded(out)
        for key in ("cat0", "dog2", "alpha", "cat1"):
            rel = files[key].relative_to(src).as_posix()
            got, _ = images[rel]
            source = pillow_hwc(files[key])
            if fmt == "encoded" and key == "cat1":
                continue  # JPEG: covered below
            assert got.dtype == np.float32
            # Exactly what convert_image_dtype makes of the source pixels ...
            want = tf.image.convert_image_dtype(source, tf.float32).numpy()
            assert np.array_equal(got, want), (fmt, key)
            # ... which is x / 255 to within float32 rounding.
            assert np.abs(got - source / 255.0).max() < 1e-7
        got16, _ = images["cat/deep.png"]
        source16 = pillow_hwc(files["gray16"]).astype(np.uint16)
        assert np.abs(got16 - source16 / 65535.0).max() < 1e-7
        assert np.array_equal(got16, tf.image.convert_image_dtype(source16, tf.float32).numpy())


def test_jpeg_decodes_like_tensorflow_and_pillow(tree, tmp_path):
    src, files = tree
    out = tmp_path / "out"
    pack(src, out)
    got, _ = decoded(out)["cat/cat1.jpg"]
    data = files["cat1"].read_bytes()
    tf_pixels = tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE")
    assert np.array_equal(got, tf.image.convert_image_dtype(tf_pixels, tf.float32).numpy())
    assert np.array_equal(np.round(got * 255).astype(np.uint8), pillow_hwc(files["cat1"]))


def test_labels_and_value_range(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out)
    images = decoded(out)
    assert len(images) == 13
    assert images["dog/dog1.jpg"][1] == 1
    assert images["loose.png"][1] == -1
    for arr, _ in images.values():
        assert arr.min() >= 0.0 and arr.max() <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_in_every_format(tmp_path, orientation):
    from fixtures import smooth_rgb

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(smooth_rgb(16, 24, 3)).save(src / "photo.jpg", quality=95, exif=exif.tobytes())
    with Image.open(src / "photo.jpg") as im:
        want = np.asarray(ImageOps.exif_transpose(im))
    for fmt in ("encoded", "raw", "png"):
        out = tmp_path / f"out-{fmt}"
        pack(src.parent, out, PackOptions(format=fmt))
        got, _ = decoded(out)["a/photo.jpg"]
        assert got.shape == want.shape, fmt
        assert np.array_equal(np.round(got * 255).astype(np.uint8), want), fmt
    # encoded keeps the JPEG bytes unchanged: the orientation travels in the record.
    assert (src / "photo.jpg").read_bytes() in (tmp_path / "out-encoded").joinpath(
        "data-00000-of-00001.tfrecord"
    ).read_bytes()


@pytest.mark.slow
def test_deterministic_order_and_limit(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out, PackOptions(shards=3))
    first = [fn.numpy() for _, fn in imgrec.dataset(out, labels=False, with_filenames=True)]
    second = [fn.numpy() for _, fn in imgrec.dataset(out, labels=False, with_filenames=True)]
    assert first == second and len(first) == 13
    assert len(list(imgrec.dataset(out, limit=5))) == 5


def test_resize_and_batch(tmp_path):
    from fixtures import smooth_rgb

    src = tmp_path / "src"
    for i, name in enumerate(["a", "b"]):
        (src / name).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(smooth_rgb(20 + j, 30 - j, i * 3 + j)).save(src / name / f"{j}.png")
    out = tmp_path / "out"
    pack(src, out)
    batches = list(imgrec.dataset(out, resize=(8, 10), batch_size=4))
    assert [tuple(b[0].shape) for b in batches] == [(4, 8, 10, 3), (2, 8, 10, 3)]
    assert batches[0][0].dtype == tf.float32
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == [0, 0, 0, 1, 1, 1]


def test_half_precision_output(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out, PackOptions(format="raw"))
    for image, _ in imgrec.dataset(out, dtype="bfloat16", limit=2):
        assert image.dtype == tf.bfloat16


def test_gpu_without_gpu_is_a_clear_error(tree, tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out)
    with pytest.raises(DependencyError, match="no GPU"):
        imgrec.dataset(out, device="gpu")


def test_batching_mixed_sizes_without_resize_is_a_clear_error(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src / "cat", out)  # sizes and channels (gray and colour) differ
    with pytest.raises(imgrec.ImgrecError, match=r"pass resize=\(height, width\)"):
        imgrec.dataset(out, batch_size=2)
    out3 = tmp_path / "out3"
    pack(src / "cat", out3, PackOptions(channels="3"))
    with pytest.raises(imgrec.ImgrecError, match=r"pass resize=\(height, width\)"):
        imgrec.dataset(out3, batch_size=2)
    (batch, _labels) = next(iter(imgrec.dataset(out3, batch_size=2, resize=(5, 6))))
    assert batch.shape == (2, 5, 6, 3)


@pytest.mark.parametrize(
    "given",
    [
        {"limit": -1},
        {"limit": 2.5},
        {"limit": True},
        {"batch_size": 0},
        {"batch_size": -2},
        {"resize": (0, 5)},
        {"resize": (-3, 5)},
        {"resize": (5,)},
    ],  # fmt: skip
)
def test_arguments_tensorflow_would_fail_on_are_refused_when_the_dataset_is_made(
    packed_tree, given
):
    out, _ = packed_tree(channels="3")
    name = next(iter(given))
    # TensorFlow failed on the first record (limit=-1: "expected to contain an infinite
    # number of elements"; resize=(0, 5): inside the map), or raised its own error types
    with pytest.raises(imgrec.ImgrecError, match=rf"^{name}=.*: give "):
        imgrec.dataset(out, **({"batch_size": None, "resize": (4, 4)} | given))


def test_a_cache_in_a_folder_that_does_not_exist_is_refused_naming_it(packed_tree, tmp_path):
    out, _ = packed_tree(channels="3")
    missing = tmp_path / "no-such-folder" / "cache"
    # TensorFlow raised NotFoundError (cache_0.lockfile) at the first record
    with pytest.raises(imgrec.ImgrecError, match=r"the folder .*no-such-folder does not exist"):
        imgrec.dataset(out, cache=str(missing))
    cached = imgrec.dataset(out, batch_size=None, cache=str(tmp_path / "cache"))
    assert sum(1 for _ in cached) == sum(1 for _ in imgrec.dataset(out, batch_size=None))


def test_a_numpy_whole_number_is_a_limit(packed_tree):
    import numpy as np

    out, _ = packed_tree(channels="3")
    assert sum(1 for _ in imgrec.dataset(out, batch_size=None, limit=np.int64(3))) == 3


def test_a_dataset_of_no_records_reads_as_an_empty_dataset(tmp_path):
    from samples import empty_dataset

    out = empty_dataset(tmp_path)  # pack skipped its only file: a manifest of 0 records
    ds = imgrec.dataset(out, batch_size=4, resize=(32, 32), channels=3)
    assert list(ds) == [] and len(ds) == 0
    images, labels = ds.element_spec
    assert (images.shape.as_list(), images.dtype) == ([None, 32, 32, 3], tf.float32)
    assert (labels.shape.as_list(), labels.dtype) == ([None], tf.int64)
    for kw in ({}, {"cache": True, "shuffle": True}, {"on_problem": print}):
        assert list(imgrec.dataset(out, **kw)) == [], kw


def test_limit_takes_the_same_records_every_epoch_shuffled_or_cached(tmp_path):
    from samples import make_src

    out = tmp_path / "out"
    pack(make_src(tmp_path / "src", n=24), out, PackOptions(shards=6))

    def epochs(**kw) -> list[list[str]]:
        ds = imgrec.dataset(out, labels=False, with_filenames=True, limit=5, **kw)
        return [[f.numpy().decode() for _, f in ds] for _ in range(3)]

    (first, *_) = epochs()
    for kw in ({}, {"cache": True}):
        orders = epochs(shuffle=True, seed=0, **kw)
        assert all(sorted(o) == sorted(first) for o in orders), (kw, orders, first)
        assert len({tuple(o) for o in orders}) > 1, kw  # their order is still shuffled
    (checked, *_) = epochs(on_problem=print)
    assert all(sorted(o) == sorted(checked) for o in epochs(shuffle=True, on_problem=print))
