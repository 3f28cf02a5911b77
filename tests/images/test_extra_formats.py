"""HEIC/HEIF (imgrec[heif], pillow-heif), JPEG XL (imgrec[jxl], imagecodecs) and AVIF
(Pillow's own): files made here with each library's encoder, packed, and their stored pixels
compared with the same library's decode. Without the extras, such files are skipped with a
reason that names the extra to install."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pillow_heif
import pytest
from fixtures import noise, smooth_rgb
from PIL import Image, ImageOps
from samples import records_by_name

from imgrec import PackOptions, pack
from imgrec.format.schema import Record


def pixels(r: Record) -> np.ndarray:
    """The stored pixels, decoded by libpng (imagecodecs), not by imgrec or Pillow."""
    if r.format == "raw":
        arr = np.frombuffer(r.data, dtype=np.dtype(r.dtype).newbyteorder("<"))
        return arr.reshape(r.height, r.width, r.channels)
    assert r.format == "png", r.format
    arr = imagecodecs.png_decode(r.data)
    return arr[..., None] if arr.ndim == 2 else arr


def heif_decode(data: bytes) -> np.ndarray:
    """pillow-heif's own decode of the primary image, at its own depth (10 bits: << 6)."""
    arr = np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False))
    return arr[..., None] if arr.ndim == 2 else arr


def heic(arr: np.ndarray, bits: int = 8, **save: object) -> bytes:
    """``arr`` (HWC, uint8; uint16 of ``bits``-bit values) as a HEIC by pillow-heif (x265)."""
    h, w, c = arr.shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c] + (";16" if bits > 8 else "")
    data = (arr.astype(np.uint16) << (16 - bits)).tobytes() if bits > 8 else arr.tobytes()
    f = pillow_heif.from_bytes(mode=mode, size=(w, h), data=data)
    buf = io.BytesIO()
    f.save(buf, quality=92, **({"bit_depth": bits} if bits > 8 else {}), **save)
    return buf.getvalue()


@pytest.fixture
def photo() -> np.ndarray:
    return smooth_rgb(48, 64, seed=3)


def pack_one(tmp_path: Path, name: str, data: bytes, **opts: object) -> tuple[Record, dict]:
    """``data`` packed alone as a/``name``: its record (None if skipped), the manifest."""
    n = len(list(tmp_path.iterdir()))
    src, out = tmp_path / f"src{n}", tmp_path / f"out{n}"
    (src / "a").mkdir(parents=True)
    (src / "a" / name).write_bytes(data)
    # (a pack with nothing to pack is refused: a second image keeps it going)
    Image.new("RGB", (4, 4)).save(src / "a" / "zz-plain.png")
    manifest = pack(src, out, PackOptions(workers=1, **opts)).to_dict()  # type: ignore[arg-type]
    recs = records_by_name(out)
    return recs.get(f"a/{name}"), manifest  # type: ignore[return-value]


def note_of(manifest: dict, name: str) -> str:
    return {n["path"]: n["reason"] for n in manifest["transcoded"]}[f"a/{name}"]


def test_heic_8_bit_is_stored_as_libheifs_pixels_in_a_png(tmp_path, photo):
    data = heic(photo)
    rec, manifest = pack_one(tmp_path, "IMG_0001.HEIC", data)
    assert (rec.format, rec.dtype, rec.height, rec.width, rec.channels) == (
        "png",
        "uint8",
        48,
        64,
        3,
    )
    assert np.array_equal(pixels(rec), heif_decode(data))
    assert note_of(manifest, "IMG_0001.HEIC").startswith("HEIF RGB transcoded to PNG")


@pytest.mark.parametrize("bits", [10, 12])
def test_heic_10_and_12_bit_are_kept_at_16_bits_full_range(tmp_path, photo, bits):
    top = (1 << bits) - 1
    deep = (photo.astype(np.uint16) * top // 255).astype(np.uint16)
    deep[:16, :16] = top  # white, and black: the ends of the range
    deep[-16:, -16:] = 0
    data = heic(deep, bits=bits)
    for fmt in ("raw", "encoded"):  # (a note is written for encoded only)
        rec, manifest = pack_one(tmp_path, "deep.heic", data, format=fmt)
        assert (rec.dtype, rec.channels) == ("uint16", 3)
        stored = pixels(rec).astype(np.int64)
        coded = heif_decode(data).astype(np.int64) >> (16 - bits)  # libheif's own values
        # every value v stretched to 0..65535 as v * 65535 / top, to the nearest
        assert np.abs(stored - np.round(coded * 65535 / top)).max() <= 1
        assert (stored.max(), stored.min()) == (65535, 0)  # not merely shifted
    assert f"HEIF RGB {bits}-bit" in note_of(manifest, "deep.heic")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_turned_by_irot_and_imir_comes_out_upright(tmp_path, photo, orientation):
    """pillow-heif writes an EXIF orientation as irot/imir (and keeps the EXIF tag, as
    Apple's files do): the stored image is the photo as exif_transpose shows it, once."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = heic(photo, exif=exif.tobytes())
    assert (b"irot" in data or b"imir" in data) == (orientation != 1)
    rec, _ = pack_one(tmp_path, "turned.heic", data)
    assert rec.orientation == 1
    assert np.array_equal(pixels(rec), heif_decode(data))
    shown = Image.fromarray(photo)
    shown.getexif()[0x0112] = orientation
    upright = np.asarray(ImageOps.exif_transpose(shown)).astype(int)
    assert pixels(rec).shape == upright.shape
    off = np.abs(pixels(rec).astype(int) - upright).mean()
    wrong = [
        np.abs(pixels(rec).astype(int) - other).mean()
        for other in (upright[::-1], upright[:, ::-1])
    ]
    assert off < 6 and min(wrong) > 3 * off, (off, wrong)


def test_heic_alpha_is_kept(tmp_path, photo):
    alpha = noise((48, 64, 1), seed=5)
    data = heic(np.concatenate([photo, alpha], axis=2))
    rec, _ = pack_one(tmp_path, "alpha.heic", data)
    assert rec.channels == 4
    assert np.array_equal(pixels(rec), heif_decode(data))
    rec, _ = pack_one(tmp_path, "alpha.heic", data, channels="3")
    assert np.array_equal(pixels(rec), heif_decode(data)[..., :3])


def test_multi_image_heic_packs_its_primary_and_counts_the_others(tmp_path, photo):
    f = pillow_heif.from_pillow(Image.fromarray(photo))
    f.add_from_pillow(Image.fromarray(photo[::-1].copy()))
    f.add_from_pillow(Image.fromarray(photo[:, ::-1].copy()))
    buf = io.BytesIO()
    f.save(buf, quality=92, primary_index=1)  # a burst whose chosen shot is the second
    data = buf.getvalue()
    rec, manifest = pack_one(tmp_path, "burst.heic", data)
    assert np.array_equal(pixels(rec), heif_decode(data))
    off = [np.abs(pixels(rec).astype(int) - shot).mean() for shot in (photo[::-1], photo)]
    assert off[0] < 6 and off[1] > 3 * off[0], off  # the primary, not the first
    assert "its primary image packed, not the 2 more image(s)" in note_of(manifest, "burst.heic")


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_jpeg_xl_lossless_is_stored_exactly(tmp_path, channels, dtype):
    arr = noise((30, 41, channels), seed=channels, dtype=dtype)
    data = imagecodecs.jpegxl_encode(arr[..., 0] if channels == 1 else arr, lossless=True)
    rec, manifest = pack_one(tmp_path, "x.jxl", data)
    decoded = imagecodecs.jpegxl_decode(data)
    assert np.array_equal(pixels(rec), decoded.reshape(arr.shape))
    assert np.array_equal(pixels(rec), arr)
    assert rec.dtype == np.dtype(dtype).name
    assert "TensorFlow has no JPEG XL decoder" in note_of(manifest, "x.jxl")


def test_jpeg_xl_in_a_container_under_a_lying_extension(tmp_path, photo):
    data = imagecodecs.jpegxl_encode(photo, lossless=True, usecontainer=True)
    rec, _ = pack_one(tmp_path, "photo.png", data)
    assert np.array_equal(pixels(rec), photo)


def test_avif_is_stored_as_pillows_pixels(tmp_path, photo):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="AVIF", quality=90)
    data = buf.getvalue()
    rec, _ = pack_one(tmp_path, "x.avif", data)
    assert np.array_equal(pixels(rec), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_jpeg_format_and_max_pixels_apply_to_extras_too(tmp_path, photo):
    rec, _ = pack_one(tmp_path, "a.heic", heic(photo), format="jpeg")
    assert rec.format == "jpeg"
    big = imagecodecs.jpegxl_encode(np.zeros((300, 400, 3), np.uint8), lossless=True)
    for name, data in (("big.jxl", big), ("big.heic", heic(np.zeros((300, 400, 3), np.uint8)))):
        rec, manifest = pack_one(tmp_path, name, data, max_pixels=1000)
        assert rec is None
        (skip,) = [s["reason"] for s in manifest["skipped"] if s["path"] == f"a/{name}"]
        assert skip == "too-many-pixels: 400x300 is over --max-pixels 1000"


def test_cut_and_damaged_heic_and_jpeg_xl_are_skipped_saying_so(tmp_path, photo):
    heif, jxl = heic(photo), imagecodecs.jpegxl_encode(photo)
    cases = {
        "cut.heic": (heif[: len(heif) // 2], "truncated: "),
        "cut.jxl": (jxl[: len(jxl) * 2 // 3], "truncated: "),
        "nometa.heic": (heif.replace(b"meta", b"xxxx", 1), "corrupt: "),
        "zeros.jxl": (jxl[:20] + bytes(len(jxl)), "corrupt: "),
    }
    for name, (data, code) in cases.items():
        rec, manifest = pack_one(tmp_path, name, data)
        assert rec is None
        (skip,) = [s["reason"] for s in manifest["skipped"] if s["path"] == f"a/{name}"]
        assert skip.startswith(code), (name, skip)


def test_without_the_extras_each_file_is_skipped_naming_its_extra(tmp_path, photo, monkeypatch):
    """The reason names the extra and the package, whatever the extension; AVIF, which
    Pillow reads, still packs."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "IMG_0001.HEIC").write_bytes(heic(photo))
    (src / "IMG_0002.jpg").write_bytes(heic(photo))  # an extension that lies
    (src / "b.jxl").write_bytes(JXL_PHOTO)
    (src / "c.png").write_bytes(JXL_PHOTO)
    avif = io.BytesIO()
    Image.fromarray(photo).save(avif, format="AVIF")
    (src / "d.avif").write_bytes(avif.getvalue())
    manifest = pack(tmp_path / "src", tmp_path / "out", PackOptions(workers=1)).to_dict()
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    for name in ("a/IMG_0001.HEIC", "a/IMG_0002.jpg"):
        assert reasons[name].startswith("needs-extra: a HEIC/HEIF image"), reasons
        assert "pip install 'imgrec[heif]'" in reasons[name]
    for name in ("a/b.jxl", "a/c.png"):
        assert reasons[name].startswith("needs-extra: a JPEG XL image"), reasons
        assert "pip install 'imgrec[jxl]'" in reasons[name]
    assert set(reasons) == {"a/IMG_0001.HEIC", "a/IMG_0002.jpg", "a/b.jxl", "a/c.png"}
    assert manifest["records"] == 1


JXL_PHOTO = imagecodecs.jpegxl_encode(smooth_rgb(16, 24, seed=1), lossless=True)
