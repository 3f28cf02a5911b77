"""The whole path on a varied corpus of odd images and hostile files (tests/corpus.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from corpus import IGNORE, IMAGE, make_corpus, reference

import imgrec


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    src, out = root / "src", root / "out"
    expect = make_corpus(src, copies=2)
    result = subprocess.run(
        [sys.executable, "-m", "imgrec", "pack", str(src), str(out), "--workers", "2", "--json"],
        capture_output=True,
        text=True,
    )
    return src, out, expect, result


def test_pack_succeeds_without_traceback(packed):
    _, _, _, result = packed
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_every_hostile_file_gets_its_specific_outcome(packed):
    _, _, expect, result = packed
    manifest = json.loads(result.stdout)
    codes = {s["path"]: s["reason"].split(":", 1)[0] for s in manifest["skipped"]}
    wanted = {p: o for p, o in expect.items() if o not in (IMAGE, IGNORE)}
    assert codes == wanted
    # notes.txt, empty.dat and the symlink loop are ignored, not skipped.
    assert manifest["ignored"] >= sum(o == IGNORE for o in expect.values()) + 1


def test_every_image_is_packed_and_decodes_to_the_reference_pixels(packed):
    src, out, expect, result = packed
    manifest = json.loads(result.stdout)
    images = [p for p, o in expect.items() if o == IMAGE]
    assert manifest["records"] == len(images)  # 100%, not just 99%
    decoded = {
        fn.numpy().decode("utf-8", "surrogateescape"): im.numpy()
        for im, fn in imgrec.dataset(out, labels=False, with_filenames=True)
    }
    assert sorted(decoded) == sorted(images)
    mismatches = []
    for rel in images:
        want = reference(src / rel)
        expected = tf.image.convert_image_dtype(want, tf.float32).numpy()
        got = decoded[rel]
        if got.shape != expected.shape or not np.array_equal(got, expected):
            mismatches.append((rel, got.shape, expected.shape))
    assert mismatches == []


def test_sixteen_bit_and_float_sources_keep_their_depth(packed):
    _, out, _, _ = packed
    info = imgrec.inspect([str(out)]).to_dict()
    assert {"uint8", "uint16", "int32", "float32"} <= set(info["dtypes"])


def test_transcoded_images_are_listed_with_a_reason(packed):
    _, _, _, result = packed
    manifest = json.loads(result.stdout)
    reasons = {t["path"].split(" ", 1)[1]: t["reason"] for t in manifest["transcoded"]}
    assert "cmyk.jpg" in reasons and "CMYK" in reasons["cmyk.jpg"]
    assert "rgb.bmp" in reasons and "palette.gif" in reasons
    assert "rgb.png" not in reasons and "rgb_q75.jpg" not in reasons  # bytes kept
    assert "stored raw" in reasons["int32.tif"] and "stored raw" in reasons["float32.tif"]
