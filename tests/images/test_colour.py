"""--color: images tagged with ICC profiles built in tests/icc_profiles.py, packed, and
their stored pixels compared with conversions computed without LittleCMS (colour-science).
``srgb`` must agree within a mean CIEDE2000 of 1 and a maximum of 3; ``keep`` stores the
pixels as they are and records the profile."""

from __future__ import annotations

import io
import json
import struct
import sys
import threading
import zlib
from pathlib import Path

import icc_profiles
import imagecodecs
import numpy as np
import pillow_heif
import pytest
from PIL import Image
from samples import records_by_name

from imgrec import PackOptions, pack
from imgrec.checking.summary import summarize
from imgrec.format.schema import Record
from imgrec.images import colour


def pixels(r: Record) -> np.ndarray:
    """Stored pixels, decoded by libpng or libjpeg-turbo through imagecodecs."""
    decode = imagecodecs.png_decode if r.format == "png" else imagecodecs.jpeg8_decode
    arr = decode(r.data)
    return arr[..., None] if arr.ndim == 2 else arr


def png16_with_profile(arr: np.ndarray, profile: bytes) -> bytes:
    """A 16-bit PNG (libpng, through imagecodecs) with an iCCP chunk after its IHDR."""
    data = imagecodecs.png_encode(arr)
    body = b"icc\x00\x00" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:33] + chunk + data[33:]  # signature (8) + IHDR (25)


def saved(arr: np.ndarray, fmt: str, profile: bytes | None, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": profile} if profile else {}
    Image.fromarray(arr, mode).save(buf, format=fmt, quality=95, **extra)
    return buf.getvalue()


RGB8 = icc_profiles.test_image(64, 96, bits=8)
RGB16 = icc_profiles.test_image(64, 96, bits=16, seed=1)
GRAY8 = RGB8[..., 1]
CMYK8 = np.concatenate(
    [
        np.stack(np.meshgrid(np.linspace(0, 255, 12), np.linspace(0, 255, 8)), -1),
        np.zeros((8, 12, 2)),
    ],
    axis=2,
).astype(np.uint8)
CMYK8 = np.concatenate([CMYK8, np.random.default_rng(2).integers(0, 256, (40, 12, 4))])
CMYK8 = CMYK8.astype(np.uint8)

# name: (file bytes, the pixels as decoded (what the reference converts), reference)
CASES = {
    "p3.png": (saved(RGB8, "PNG", icc_profiles.DISPLAY_P3), RGB8, "Display P3"),
    "p3.jpg": (saved(RGB8, "JPEG", icc_profiles.DISPLAY_P3), None, "Display P3"),
    "adobe.png": (saved(RGB8, "PNG", icc_profiles.ADOBE_RGB), RGB8, "Adobe RGB (1998)"),
    "adobe.jpg": (saved(RGB8, "JPEG", icc_profiles.ADOBE_RGB), None, "Adobe RGB (1998)"),
    "prophoto.png": (saved(RGB8, "PNG", icc_profiles.PROPHOTO), RGB8, "ProPhoto RGB test"),
    "p3-16.png": (png16_with_profile(RGB16, icc_profiles.DISPLAY_P3), RGB16, "Display P3"),
    "adobe-16.png": (png16_with_profile(RGB16, icc_profiles.ADOBE_RGB), RGB16, "Adobe RGB (1998)"),
    "gray.png": (saved(GRAY8, "PNG", icc_profiles.GRAY_22), GRAY8, "gray"),
    "cmyk.jpg": (saved(CMYK8, "JPEG", icc_profiles.CMYK, "CMYK"), None, "cmyk"),
}
KINDS = {"p3": "Display P3", "adobe": "Adobe RGB", "prophoto": "other", "gray": "gray"}
KINDS["cmyk"] = "CMYK"


def source_pixels(name: str) -> np.ndarray:
    data, decoded, _ = CASES[name]
    return decoded if decoded is not None else np.asarray(Image.open(io.BytesIO(data)))


def reference(name: str) -> np.ndarray:
    """sRGB floats of the case's pixels, computed with colour-science."""
    _, _, how = CASES[name]
    arr = source_pixels(name)
    if how == "gray":
        return icc_profiles.reference_gray_srgb(arr, 2.2)
    if how == "cmyk":
        return icc_profiles.reference_cmyk_srgb(arr)
    return icc_profiles.reference_srgb(arr, how)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, dict[str, Record]]:
    root = tmp_path_factory.mktemp("colour")
    src = root / "src" / "a"
    src.mkdir(parents=True)
    for name, (data, _, _) in CASES.items():
        (src / name).write_bytes(data)
    (src / "plain.jpg").write_bytes(saved(RGB8, "JPEG", None))
    (src / "srgb.jpg").write_bytes(saved(RGB8, "JPEG", icc_profiles.SRGB))
    out = {}
    for mode in ("keep", "srgb"):
        pack(root / "src", root / mode, PackOptions(color=mode, workers=1))
        out[mode] = records_by_name(root / mode)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_srgb_agrees_with_an_independent_conversion(packed, name):
    rec = packed["srgb"][f"a/{name}"]
    assert rec.format == "png" and rec.icc is None
    assert rec.profile == KINDS[name.split(".")[0].split("-")[0]]
    stored = pixels(rec)
    assert stored.dtype == source_pixels(name).dtype  # 16-bit converted at 16 bits
    assert stored.shape[2] == (1 if name.startswith("gray") else 3)
    de = icc_profiles.delta_e2000(stored, reference(name))
    assert de.mean() < 1 and de.max() < 3, (de.mean(), de.max())
    if name.startswith(("p3", "adobe", "prophoto", "cmyk")):
        # what is at stake: the same pixels taken as sRGB (Pillow's own formula, for CMYK)
        kept = source_pixels(name)
        ignored = (
            np.asarray(Image.fromarray(kept, "CMYK").convert("RGB")) if kept.shape[2] == 4 else kept
        )
        assert icc_profiles.delta_e2000(ignored, reference(name)).mean() > 1.5


def test_sixteen_bit_is_converted_finer_than_eight_bits_could(packed):
    stored = pixels(packed["srgb"]["a/p3-16.png"]).astype(np.float64) / 65535
    error = np.abs(stored - reference("p3-16.png"))
    in_gamut = (reference("p3-16.png") > 0.01).all(-1) & (reference("p3-16.png") < 0.99).all(-1)
    assert np.median(error[in_gamut]) < 0.5 / 255  # below one 8-bit step


def test_keep_stores_pixels_as_they_are_and_records_the_profile(packed):
    keep = packed["keep"]
    p3 = keep["a/p3.jpg"]
    assert p3.data == CASES["p3.jpg"][0]  # the file's bytes, as before --color existed
    assert (p3.icc, p3.profile) == (icc_profiles.DISPLAY_P3, "Display P3")
    assert np.array_equal(pixels(keep["a/p3.png"]), RGB8)
    assert keep["a/gray.png"].icc == icc_profiles.GRAY_22
    # Pillow's CMYK-to-RGB formula, as before; the CMYK profile does not describe RGB pixels
    assert (keep["a/cmyk.jpg"].icc, keep["a/cmyk.jpg"].profile) == (None, "CMYK")
    assert (keep["a/plain.jpg"].icc, keep["a/plain.jpg"].profile) == (None, "")


def test_images_without_a_profile_or_in_srgb_are_not_converted(packed):
    for name in ("a/plain.jpg", "a/srgb.jpg"):
        assert packed["srgb"][name].data == packed["keep"][name].data
    assert packed["srgb"]["a/srgb.jpg"].icc == icc_profiles.SRGB


def test_the_manifest_and_inspect_count_profiles_and_conversions(packed, tmp_path_factory):
    root = Path(str(tmp_path_factory.getbasetemp())) / "colour0"
    manifest = json.loads((root / "srgb" / "manifest.json").read_text())
    assert manifest["options"]["color"] == "srgb"
    assert "color" not in json.loads((root / "keep" / "manifest.json").read_text())["options"]
    converted = [
        n["path"] for n in manifest["transcoded"] if "to sRGB (--color srgb)" in n["reason"]
    ]
    assert sorted(converted) == sorted(f"a/{n}" for n in CASES)
    expected = {"Adobe RGB": 3, "CMYK": 1, "Display P3": 3, "gray": 1, "other": 1, "sRGB": 1}
    assert manifest["stats"]["profiles"] == expected | {"none": 1}
    shards = [str(p) for p in sorted((root / "srgb").glob("*.tfrecord"))]
    for source in ([str(root / "srgb")], shards):  # the manifest's numbers, the records'
        assert summarize(source).to_dict()["profiles"] == expected | {"none": 1}


def test_sixteen_bit_conversion_without_imagecodecs_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "deep.png").write_bytes(CASES["p3-16.png"][0])
    (src / "p3.png").write_bytes(CASES["p3.png"][0])
    manifest = pack(tmp_path / "src", tmp_path / "out", PackOptions(color="srgb", workers=1))
    (skipped,) = manifest.to_dict()["skipped"]
    assert skipped["path"] == "a/deep.png"
    assert skipped["reason"].startswith("needs-extra: a 16-bit image with a colour profile")
    assert "pip install 'imgrec[color]'" in skipped["reason"]


def test_conversions_in_threads_agree():
    arr = source_pixels("p3.png")
    profile = colour.profile_of(icc_profiles.DISPLAY_P3)
    assert profile is not None
    alone = colour.to_srgb(arr, profile)
    results: list[bool] = []

    def convert() -> None:
        results.extend(np.array_equal(colour.to_srgb(arr, profile), alone) for _ in range(20))

    threads = [threading.Thread(target=convert) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [True] * 80


def test_profiles_are_classed_by_name_or_by_colorants():
    renamed = icc_profiles.rgb_profile(
        "Camera working space", icc_profiles.P3_PRIMARIES, trc=icc_profiles.SRGB_CURVE
    )
    classes = {
        "sRGB": icc_profiles.SRGB, "Display P3": renamed, "Adobe RGB": icc_profiles.ADOBE_RGB,
        "other": icc_profiles.REC2020, "gray": icc_profiles.GRAY_22, "CMYK": icc_profiles.CMYK,
    }  # fmt: skip
    for kind, data in classes.items():
        found = colour.profile_of(data)
        assert found is not None and found.kind == kind, (kind, found)
    broken = colour.profile_of(b"not a profile")
    assert broken is not None and (broken.kind, broken.converts) == ("other", False)
    assert colour.profile_of(None) is None and colour.profile_of(b"") is None


def test_a_profile_little_cms_cannot_apply_skips_the_image_naming_the_way_out(tmp_path):
    """Under srgb a profile that reads but cannot convert (its curve's type damaged) skips
    the image as corrupt, saying to pack with keep; under keep the image packs as before."""
    damaged = bytearray(icc_profiles.DISPLAY_P3)
    at = damaged.find(b"para")
    damaged[at : at + 4] = b"xxxx"
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "bad.png").write_bytes(saved(RGB8, "PNG", bytes(damaged)))
    (src / "plain.png").write_bytes(saved(RGB8, "PNG", None))
    manifest = pack(tmp_path / "src", tmp_path / "srgb", PackOptions(color="srgb", workers=1))
    (skipped,) = manifest.to_dict()["skipped"]
    assert skipped["path"] == "a/bad.png"
    assert skipped["reason"].startswith("corrupt: its ICC profile cannot be applied")
    assert skipped["reason"].endswith("pack it with --color keep")
    kept = pack(tmp_path / "src", tmp_path / "keep", PackOptions(workers=1)).to_dict()
    assert kept["records"] == 2 and not kept["skipped"]


@pytest.mark.parametrize("bits", [8, 10])
def test_a_display_p3_heic_as_phones_write_it_is_converted(tmp_path, bits):
    """iPhones save HEIC with a Display P3 profile (a 'colr' box of type 'prof')."""
    deep = (RGB16 >> (16 - bits)).astype(np.uint16) if bits > 8 else RGB8
    mode = "RGB;16" if bits > 8 else "RGB"
    data = (deep << (16 - bits)).astype(np.uint16).tobytes() if bits > 8 else deep.tobytes()
    heif = pillow_heif.from_bytes(mode=mode, size=(96, 64), data=data)
    buf = io.BytesIO()
    heif.save(
        buf,
        quality=95,
        icc_profile=icc_profiles.DISPLAY_P3,
        **({"bit_depth": bits} if bits > 8 else {}),
    )
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "IMG_0001.HEIC").write_bytes(buf.getvalue())
    decoded = np.asarray(
        pillow_heif.open_heif(io.BytesIO(buf.getvalue()), convert_hdr_to_8bit=False)
    )
    if bits > 8:  # stretched to 16 bits as imgrec stores it
        value = decoded.astype(np.int64) >> (16 - bits)
        decoded = np.round(value * 65535 / ((1 << bits) - 1)).astype(np.uint16)
    for mode_ in ("keep", "srgb"):
        pack(tmp_path / "src", tmp_path / mode_, PackOptions(color=mode_, workers=1))
    kept, converted = (
        records_by_name(tmp_path / "keep")["a/IMG_0001.HEIC"],
        records_by_name(tmp_path / "srgb")["a/IMG_0001.HEIC"],
    )
    assert (kept.icc, kept.profile) == (icc_profiles.DISPLAY_P3, "Display P3")
    assert np.abs(pixels(kept).astype(int) - decoded).max() <= (1 if bits > 8 else 0)
    assert (converted.icc, converted.profile) == (None, "Display P3")
    assert pixels(converted).dtype == decoded.dtype
    de = icc_profiles.delta_e2000(
        pixels(converted), icc_profiles.reference_srgb(decoded, "Display P3")
    )
    assert de.mean() < 1 and de.max() < 3, (de.mean(), de.max())
