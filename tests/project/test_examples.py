"""The scripts in examples/: each is run the way a user would run it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import imgrec
from imgrec import PackOptions, pack

EXAMPLES = Path(__file__).parents[2] / "examples"


def run_script(*args: object, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_read_without_imgrec_counts(packed_tree, fmt):
    out, _ = packed_tree(format=fmt, shards=2)
    r = run_script(sys.executable, EXAMPLES / "read_without_imgrec.py", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "records: 13",
        "label -1 (unlabelled): 1",
        "label 0 cat: 4",
        "label 1 dog: 4",
        "label 2 fish: 4",
    ]


@pytest.mark.slow
def test_read_without_imgrec_without_shards_is_an_error(tmp_path):
    r = run_script(sys.executable, EXAMPLES / "read_without_imgrec.py", tmp_path)
    assert r.returncode != 0 and "no *.tfrecord" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_read_without_imgrec_gives_imgrecs_pixels(tree, tmp_path, fmt):
    """The README's schema is enough to get exactly imgrec.dataset's tensors: 8 and 16 bit,
    1/3/4 channels, JPEG, PNG and raw, and every EXIF orientation."""
    from fixtures import smooth_rgb

    src, _ = tree
    (src / "rotated").mkdir()
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(smooth_rgb(16, 24, orientation)).save(
            src / "rotated" / f"o{orientation}.jpg", quality=95, exif=exif.tobytes()
        )
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(format=fmt, shards=1)).to_dict()
    assert manifest["records"] == 21
    example = load_example("read_without_imgrec")

    shard = str(out / manifest["shards"][0]["file"])
    theirs = list(tf.data.TFRecordDataset(shard).map(example.decode))
    ours = list(imgrec.dataset(out))  # one shard: file order
    assert len(theirs) == len(ours) == 21
    orientations = []
    for (image, label, _text), (want, want_label) in zip(theirs, ours, strict=True):
        assert int(label) == int(want_label)
        assert image.dtype == tf.float32
        assert image.shape == want.shape
        assert np.array_equal(image.numpy(), want.numpy())
    for serialized in tf.data.TFRecordDataset(shard):
        f = tf.io.parse_single_example(
            serialized, {"image/orientation": tf.io.FixedLenFeature([], tf.int64, 1)}
        )
        orientations.append(int(f["image/orientation"]))
    # encoded keeps the JPEG bytes, so the decoder really had to apply orientations 2..8.
    assert sorted(set(orientations)) == (list(range(1, 9)) if fmt == "encoded" else [1])


def batch_job(out_root: Path, *folders: Path):
    env = {
        "OUT_ROOT": str(out_root),
        "IMGREC": f"{sys.executable} -m imgrec",
        "PYTHON": sys.executable,
    }
    return run_script("bash", EXAMPLES / "batch_job.sh", *folders, env=env)


@pytest.mark.slow
def test_batch_job_good_folders(tmp_path):
    from fixtures import make_tree

    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b", per_class=2)
    r = batch_job(tmp_path / "shards", tmp_path / "a", tmp_path / "b")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "13 records in 1 shard(s)" in r.stdout
    assert "10 records in 1 shard(s)" in r.stdout
    assert r.stdout.strip().endswith("no image skipped")
    assert (tmp_path / "shards" / "a" / "manifest.json").exists()
    assert (tmp_path / "shards" / "b" / "manifest.json").exists()
    # A second run replaces the earlier output.
    assert batch_job(tmp_path / "shards", tmp_path / "a").returncode == 0


@pytest.mark.slow
def test_batch_job_fails_on_a_folder_with_a_corrupt_jpeg(tmp_path):
    from fixtures import make_tree

    make_tree(tmp_path / "good")
    make_tree(tmp_path / "broken")
    (tmp_path / "broken" / "dog" / "half.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 30)
    r = batch_job(tmp_path / "shards", tmp_path / "good", tmp_path / "broken")
    assert r.returncode != 0
    assert f"FAILED: {tmp_path / 'broken'}: 1 image(s) skipped" in r.stderr
    assert "dog/half.jpg" in r.stderr
    assert str(tmp_path / "good") not in r.stderr
    # Both folders were still packed: the job reports every problem, not just the first.
    assert (tmp_path / "shards" / "broken" / "manifest.json").exists()


@pytest.mark.slow
def test_batch_job_fails_on_a_missing_folder_and_colliding_names(tmp_path):
    from fixtures import make_tree

    make_tree(tmp_path / "x" / "data")
    make_tree(tmp_path / "y" / "data")
    r = batch_job(tmp_path / "shards", tmp_path / "x" / "data", tmp_path / "nope")
    assert r.returncode != 0 and f"FAILED: {tmp_path / 'nope'}" in r.stderr
    r = batch_job(tmp_path / "shards", tmp_path / "x" / "data", tmp_path / "y" / "data")
    assert r.returncode == 2 and "data" in r.stderr
    assert run_script("bash", EXAMPLES / "batch_job.sh").returncode == 2


def _trained(script: str) -> list[str]:
    """Run a training example (900 images, 8 epochs: about 20 s on two CPU cores); its
    output lines, after checking that it learnt (the last line's validation accuracy)."""
    r = run_script(sys.executable, EXAMPLES / script, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    match = re.fullmatch(r"validation accuracy: (\d\.\d{4})", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) >= 0.95  # chance is 1/3
    return lines


@pytest.mark.slow
def test_train_classifier_learns_the_shapes():
    lines = _trained("train_classifier.py")
    packed = re.fullmatch(r"packed: 900 images \(train (\d+), val (\d+)\), 2 shard\(s\)", lines[0])
    assert packed, lines[0]
    train, val = map(int, packed.groups())
    assert train + val == 900 and 0.75 < train / 900 < 0.85
    assert lines[-2].startswith("time: ")


@pytest.mark.slow
def test_train_torch_learns_the_shapes_without_tensorflow():
    lines = _trained("train_torch.py")
    packed = re.fullmatch(r"packed: 900 images \(train (\d+), val (\d+)\)", lines[0])
    assert packed and sum(map(int, packed.groups())) == 900, lines[0]
    assert lines[-3] == "tensorflow imported: False"
