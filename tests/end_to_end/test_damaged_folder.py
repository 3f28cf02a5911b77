"""A folder of damaged photos, packed with the defaults and verified with --decode, reads
to its end in imgrec.dataset without on_problem, and in RecordSource (the reader without
TensorFlow) to the same pixels: what pack keeps, training decodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures import run
from fuzzing import variants

import imgrec


@pytest.mark.slow
def test_a_damaged_folder_packed_and_verified_reads_to_the_end(tmp_path):
    src = tmp_path / "src"
    for n, (kind, _op, data) in enumerate(variants(seed=7, n=30, per=8)):
        folder = src / f"c{n % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n:04d}.{'png' if kind == 'png' else 'jpg'}").write_bytes(data)
    out = tmp_path / "out"
    r = run("pack", src, out, "-q")
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    repaired = [t for t in manifest["transcoded"] if "TensorFlow would refuse" in t["reason"]]
    assert manifest["records"] > 100 and repaired, manifest["records"]
    r = run("verify", out, "--decode")
    assert r.exit_code == 0 and r.stdout.strip().endswith("OK"), r.output
    read = imgrec.dataset(out, labels=False, with_filenames=True)  # stops at a failure
    images = {name.decode(): image for image, name in read.as_numpy_iterator()}
    assert len(images) == manifest["records"]
    source = imgrec.RecordSource(out)
    assert len(source) == len(images)
    for i in range(len(source)):
        example = source[i]
        assert np.array_equal(example["image"], images[example["filename"]]), example["filename"]
