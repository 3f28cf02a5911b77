"""A TIFF's orientation tag is applied as an EXIF orientation is: every orientation 1 to 8,
8-bit colour in each compression Pillow writes, and 16-bit colour and gray (TIFFs built
here byte by byte, as Pillow writes no 48-bit colour TIFF), packed raw and encoded, read
back as the stored pixels turned by the tag, whichever of Pillow or imgrec applies it."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.images.pixels import orient

COMPRESSIONS = ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"]


def tiff16(arr: np.ndarray, orientation: int) -> bytes:
    """A little-endian baseline TIFF of 16-bit samples (1 or 3 per pixel) in one strip."""
    h, w, c = arr.shape
    data = arr.astype("<u2").tobytes()
    tags = 11
    after = 8 + 2 + tags * 12 + 4  # the header, the IFD and its next-IFD offset
    bits = struct.pack(f"<{c}H", *[16] * c) if c > 2 else b""

    def tag(code: int, kind: int, count: int, value: int) -> bytes:
        packed = (
            struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        )
        return struct.pack("<HHI", code, kind, count) + packed

    entries = [
        tag(256, 4, 1, w), tag(257, 4, 1, h),
        tag(258, 3, c, after) if c > 2 else tag(258, 3, 1, 16),
        tag(259, 3, 1, 1), tag(262, 3, 1, 2 if c == 3 else 1),
        tag(273, 4, 1, after + len(bits)), tag(274, 3, 1, orientation),
        tag(277, 3, 1, c), tag(278, 4, 1, h), tag(279, 4, 1, len(data)), tag(284, 3, 1, 1),
    ]  # fmt: skip
    ifd = struct.pack("<H", tags) + b"".join(entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bits + data


@pytest.mark.parametrize("fmt", ["raw", "encoded"])
def test_tiff_orientation_is_applied_as_exif_orientation_is(tmp_path, fmt):
    rng = np.random.default_rng(3)
    eight = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    deep = {c: rng.integers(0, 65536, (10, 14, c), dtype=np.uint16) for c in (1, 3)}
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for o in range(1, 9):
        for compression in COMPRESSIONS:
            Image.fromarray(eight).save(src / f"{compression}_{o}.tif", compression=compression,
                                        tiffinfo={274: o})  # fmt: skip
        for c, arr in deep.items():
            (src / f"deep{c}_{o}.tif").write_bytes(tiff16(arr, o))
    manifest = pack(tmp_path / "src", tmp_path / "out", PackOptions(format=fmt))
    assert not manifest.skipped
    source = imgrec.RecordSource(tmp_path / "out", dtype=None)
    assert len(source) == 8 * (len(COMPRESSIONS) + 2)
    for i in range(len(source)):
        example = source[i]
        name = example["filename"].split("/")[1][: -len(".tif")]
        kind, o = name.rsplit("_", 1)
        stored = deep[int(kind[4:])] if kind.startswith("deep") else eight
        want, got = orient(stored, int(o)), example["image"]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if kind == "jpeg":  # lossy: the turn is what is checked
            assert np.abs(got.astype(int) - want).mean() < 8, name
        else:
            assert np.array_equal(got, want), name
