"""Training from the shards: any photo folder batches (channels), only integers leave the
host, Keras knows the length, and replicas read disjoint parts that cover the dataset."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fixtures import smooth_rgb
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.reading.tfdata import host_dataset


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict[str, Path]:
    """A folder of gray JPEGs, colour JPEGs and PNGs, and RGBA PNGs, packed encoded and raw,
    with and without the alpha class."""
    root = tmp_path_factory.mktemp("mixed")
    src = root / "src"
    for name in ("gray", "rgb", "alpha"):
        (src / name).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(smooth_rgb(20, 24, i)).convert("L").save(src / "gray" / f"g{i}.jpg")
        Image.fromarray(smooth_rgb(20, 24, 10 + i)).save(src / "rgb" / f"c{i}.jpg")
        Image.fromarray(smooth_rgb(20, 24, 20 + i)).save(src / "rgb" / f"p{i}.png")
        rgba = np.dstack([smooth_rgb(20, 24, 30 + i), np.full((20, 24), 128, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(src / "alpha" / f"a{i}.png")
    out = {}
    for fmt in ("encoded", "raw"):
        out[fmt] = root / fmt
        pack(src, out[fmt], PackOptions(format=fmt, shards=2))
        listing = root / "no-alpha.txt"
        listing.write_text("".join(f"{p.relative_to(src)}\n" for p in sorted(src.rglob("*.*"))
                                   if p.parent.name != "alpha"))  # fmt: skip
        out[f"{fmt}-no-alpha"] = root / f"{fmt}-no-alpha"
        pack(src, out[f"{fmt}-no-alpha"], PackOptions(format=fmt, from_list=str(listing)))
    out["src"] = src
    return out


def levels(image: np.ndarray) -> np.ndarray:
    """A [0, 1] float image back as 8-bit levels."""
    return np.round(image * 255).astype(np.uint8)


def images_by_name(ds) -> dict[str, np.ndarray]:
    return {
        fn.decode(): im
        for batch, _, names in ds
        for im, fn in zip(batch.numpy(), names.numpy(), strict=True)
    }


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_gray_and_colour_batch_as_rgb_with_no_argument(mixed, fmt):
    ds = imgrec.dataset(mixed[f"{fmt}-no-alpha"], batch_size=4, with_filenames=True)
    got = images_by_name(ds)
    assert len(got) == 9 and {im.shape for im in got.values()} == {(20, 24, 3)}
    gray = np.asarray(Image.open(mixed["src"] / "gray" / "g0.jpg"), np.float32) / 255
    for c in range(3):  # gray repeated into R, G and B, nothing lost
        np.testing.assert_allclose(got["gray/g0.jpg"][..., c], gray, atol=1 / 255)
    assert imgrec.inspect([str(mixed[f"{fmt}-no-alpha"])]).to_dict()["channels"] == {
        "1": 3,
        "3": 6,
    }


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_unbatched_reads_and_decode_keep_each_images_stored_channels(mixed, fmt, tmp_path):
    """Gray with colour: each image as stored when read one at a time and in decode's files
    (both gave the gray ones 3 channels); only batches make them RGB (test above)."""
    src = mixed[f"{fmt}-no-alpha"]
    want = {f"gray/g{i}": 1 for i in range(3)}
    want |= {f"rgb/{k}{i}": 3 for i in range(3) for k in "cp"}
    read = imgrec.dataset(src, with_filenames=True).as_numpy_iterator()
    assert {n.decode().rsplit(".", 1)[0]: im.shape for im, _, n in read} == {
        name: (20, 24, c) for name, c in want.items()
    }
    imgrec.decode(src, tmp_path / "out")
    written = {
        p.relative_to(tmp_path / "out").with_suffix("").as_posix(): np.load(p).shape
        for p in (tmp_path / "out").rglob("*.npy")
    }
    assert written == {name: (20, 24, c) for name, c in want.items()}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_a_mix_with_alpha_names_the_argument_to_choose(mixed, fmt):
    with pytest.raises(imgrec.ImgrecError, match=r"channels=3 \(drop alpha\) or channels=4"):
        imgrec.dataset(mixed[fmt], batch_size=4)
    assert len(list(imgrec.dataset(mixed[fmt]))) == 12  # unbatched, each as stored


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_channels_convert_as_tensorflows_decoders_do(mixed, fmt):
    def read(channels: int) -> dict[str, np.ndarray]:
        ds = imgrec.dataset(mixed[fmt], batch_size=5, channels=channels, with_filenames=True)
        return images_by_name(ds)

    four, three, one = read(4), read(3), read(1)
    assert {im.shape[-1] for im in four.values()} == {4}
    assert {im.shape[-1] for im in one.values()} == {1}
    rgba = np.asarray(Image.open(mixed["src"] / "alpha" / "a0.png"))
    np.testing.assert_array_equal(levels(four["alpha/a0.png"]), rgba)  # alpha kept
    np.testing.assert_array_equal(levels(three["alpha/a0.png"]), rgba[..., :3])  # dropped
    assert (four["rgb/p0.png"][..., 3] == 1.0).all()  # opaque alpha added
    np.testing.assert_array_equal(four["rgb/p0.png"][..., :3], three["rgb/p0.png"])
    rgb = tf.constant(np.asarray(Image.open(mixed["src"] / "rgb" / "p0.png")))
    luma = tf.image.rgb_to_grayscale(rgb).numpy()
    assert np.abs(levels(one["rgb/p0.png"]).astype(int) - luma).max() <= 1


def test_only_integers_leave_the_host_even_when_resizing(mixed, tree, tmp_path):
    host = host_dataset(mixed["encoded"], batch_size=4, channels=3, resize=(8, 10))
    assert host.element_spec[0] == tf.TensorSpec([None, 8, 10, 3], tf.uint8)
    first = next(iter(host))[0].numpy()
    assert first.dtype == np.uint8 and first.max() > 1  # integers, not [0, 1] floats
    src, files = tree
    deep = tmp_path / "deep"
    pack(src / "cat", deep, PackOptions(from_list=None, channels="1", format="raw"))
    spec = host_dataset(deep, resize=(5, 5)).element_spec[0]
    assert spec.dtype in (tf.uint16, tf.float32)  # 16-bit gray mixed with 8-bit: float
    ds = imgrec.dataset(mixed["encoded"], batch_size=4, channels=3, resize=(8, 10))
    assert next(iter(ds))[0].dtype == tf.float32  # converted on the target device


def test_keras_knows_the_length(mixed):
    out = mixed["encoded"]
    assert len(imgrec.dataset(out, channels=3)) == 12
    assert len(imgrec.dataset(out, channels=3, batch_size=5)) == 3
    assert len(imgrec.dataset(out, channels=3, limit=7)) == 7


class Context:
    """What tf.distribute.InputContext offers a dataset function."""

    def __init__(self, pipelines: int, pipeline: int) -> None:
        self.num_input_pipelines = pipelines
        self.input_pipeline_id = pipeline


@pytest.mark.slow
@pytest.mark.parametrize("shards", [1, 4], ids=["by-record", "by-file"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_replicas_read_disjoint_parts_that_cover_the_dataset(tree, tmp_path, shards, shuffle):
    src, _ = tree
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(shards=shards))
    seen = []
    for replica in range(2):
        ds = imgrec.dataset(out, with_filenames=True, labels=False, shuffle=shuffle,
                            input_context=Context(2, replica))  # fmt: skip
        names = [fn.numpy().decode() for _, fn in ds]
        assert len(ds) == len(names)  # the cardinality each replica reports is true
        seen.append(names)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(
        fn.numpy().decode() for _, fn in imgrec.dataset(out, with_filenames=True, labels=False)
    )
    assert len(seen[0]) + len(seen[1]) == manifest.records


@pytest.mark.slow
def test_model_fit_with_mirrored_strategy_on_two_logical_cpus(mixed, tmp_path):
    # Logical devices must be set before TensorFlow starts: a fresh process.
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import imgrec
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        def data(ctx):
            return imgrec.dataset({str(mixed["encoded-no-alpha"])!r}, resize=(16, 16),
                                  batch_size=ctx.get_per_replica_batch_size(4),
                                  input_context=ctx, shuffle=True, seed=1)
        ds = strategy.distribute_datasets_from_function(data)
        with strategy.scope():
            model = tf.keras.Sequential([tf.keras.Input((16, 16, 3)),
                tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(2)])
            model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(ds, epochs=2, verbose=0)
        print("replicas", strategy.num_replicas_in_sync, "epochs", len(history.history["loss"]))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "replicas 2 epochs 2" in r.stdout


def test_alpha_added_to_low_bit_pngs_is_opaque(tmp_path):
    # TensorFlow's decode_png fills an added alpha with the bit depth's top (1 for bilevel).
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    bits = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(bits).convert("1").save(src / "bilevel.png")
    Image.fromarray(bits).convert("P").save(src / "palette.png", bits=2)
    pack(src.parent, tmp_path / "out")
    for image in imgrec.dataset(tmp_path / "out", labels=False, channels=4):
        assert image.shape[-1] == 4 and float(image[..., 3].numpy().min()) == 1.0
