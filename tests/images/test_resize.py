"""Resizing at pack time: the modes, one size order, Lanczos, 16-bit kept, refused
combinations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures import files_of, run
from PIL import Image
from samples import one_image

import imgrec
from imgrec import InputError, PackOptions, pack


@pytest.mark.parametrize(
    ("mode", "size", "want"),
    [
        ("stretch", (10, 20), (10, 20)),  # (height, width)
        ("fit", (20, 20), (15, 20)),
        ("fill", (20, 20), (20, 20)),
        ("pad", (20, 20), (20, 20)),
    ],
)
def test_resize_modes(tmp_path, mode, size, want):
    src = tmp_path / "src"
    one_image(src / "a", size=(40, 30))  # 4:3
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(resize=size, resize_mode=mode)).to_dict()
    (image,) = list(imgrec.dataset(out, labels=False))
    assert image.shape[:2] == want
    assert manifest["transcoded"][0]["reason"] == "resized, so transcoded to PNG"
    if mode == "pad":  # a 20x15 picture centred between black bands
        arr = image.numpy()
        assert arr[:2].max() == 0 and arr[-2:].max() == 0 and arr[3:17].max() > 0


def test_one_size_order_height_width_in_python_and_wxh_on_the_command_line(tmp_path):

    src = tmp_path / "src"
    one_image(src / "a", size=(40, 30))
    by_cli = run("pack", src, tmp_path / "cli", "--resize", "20x10")  # width 20, height 10
    assert by_cli.exit_code == 0, by_cli.output
    pack(src, tmp_path / "py", PackOptions(resize=(10, 20)))  # (height, width), as dataset()
    assert files_of(tmp_path / "cli") == files_of(tmp_path / "py")
    (image,) = list(imgrec.dataset(tmp_path / "py", labels=False, resize=(10, 20)))
    assert image.shape[:2] == (10, 20)
    # The manifest records [width, height] as every manifest before did: old ones still read.
    recorded = json.loads((tmp_path / "py" / "manifest.json").read_text())["options"]
    assert recorded["resize"] == [20, 10]
    assert imgrec.read_manifest(tmp_path / "py").options.resize == (10, 20)


def test_resize_matches_pillow_lanczos_and_keeps_unchanged_bytes(tmp_path):
    src = tmp_path / "src"
    path = one_image(src / "a", size=(40, 30))
    small = one_image(src / "a", "small.png", size=(16, 12))
    out = tmp_path / "out"
    pack(src, out, PackOptions(format="raw", max_side=20))
    got = {
        f.numpy().decode(): im.numpy()
        for im, f in imgrec.dataset(out, labels=False, with_filenames=True)
    }
    with Image.open(path) as im:
        want = np.asarray(im.resize((20, 15), Image.Resampling.LANCZOS))
    assert np.array_equal(np.round(got["a/a.png"] * 255).astype(np.uint8), want)
    assert got["a/small.png"].shape == (12, 16, 3)  # never enlarged
    out2 = tmp_path / "out2"
    manifest = pack(src, out2, PackOptions(max_side=20)).to_dict()
    assert [t["path"] for t in manifest["transcoded"]] == ["a/a.png"]  # small.png kept as is
    assert small.read_bytes() in (out2 / manifest["shards"][0]["file"]).read_bytes()


def test_sixteen_bit_resize_stays_sixteen_bit(tmp_path):
    from fixtures import gray16

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    gray16(30, 40, 1).save(src / "deep.png")
    out = tmp_path / "out"
    manifest = pack(src.parent, out, PackOptions(resize=(15, 20))).to_dict()
    assert manifest["stats"]["dtypes"] == {"uint16": 1}


def test_resize_and_max_side_together_are_refused(tmp_path):
    src = tmp_path / "src"
    one_image(src / "a")
    with pytest.raises(InputError, match="not both"):
        pack(src, tmp_path / "out", PackOptions(resize=(4, 4), max_side=3))
