"""The ICC profiles built in tests/icc_profiles.py are read by LittleCMS as written, and
ImageCms's conversions to sRGB (relative colorimetric) agree with the references computed
without it; ignoring a profile is far off."""

from __future__ import annotations

import io
import struct

import icc_profiles as icc
import numpy as np
import pytest
from PIL import Image, ImageCms

SRGB_OUT = ImageCms.createProfile("sRGB")
RELATIVE = ImageCms.Intent.RELATIVE_COLORIMETRIC

RGB_PROFILES = {
    "Display P3": icc.DISPLAY_P3,
    "Adobe RGB (1998)": icc.ADOBE_RGB,
    "Rec. 2020 test": icc.REC2020,
    "ProPhoto RGB test": icc.PROPHOTO,
}
ALL_PROFILES = {
    **RGB_PROFILES,
    "sRGB IEC61966-2.1": icc.SRGB,
    "Gray gamma 2.2": icc.GRAY_22,
    "CMYK test press": icc.CMYK,
}


def _profile(data: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(data))


def _to_srgb(pixels: np.ndarray, mode: str, data: bytes) -> np.ndarray:
    im = Image.fromarray(pixels, mode) if mode == "CMYK" else Image.fromarray(pixels)
    out = ImageCms.profileToProfile(im, _profile(data), SRGB_OUT, RELATIVE, "RGB")
    assert out is not None
    return np.asarray(out)


def _figures(name: str, converted: np.ndarray, ignored: np.ndarray | None = None) -> None:
    line = f"{name}: ImageCms mean {converted.mean():.3f} max {converted.max():.3f}"
    if ignored is not None:
        line += f"; profile ignored mean {ignored.mean():.3f} max {ignored.max():.3f}"
    print(line)


@pytest.mark.parametrize("description", ALL_PROFILES)
def test_littlecms_reads_the_profile_as_written(description):
    data = ALL_PROFILES[description]
    profile = _profile(data)
    assert ImageCms.getProfileDescription(profile) == description + "\n"
    assert profile.profile.version == 4.3
    cmyk = description.startswith("CMYK")
    assert profile.profile.device_class == ("prtr" if cmyk else "mntr")
    assert profile.profile.connection_space == ("Lab " if cmyk else "XYZ ")
    # the header's size, and every tag inside the file on a 4-byte boundary
    assert struct.unpack(">I", data[:4])[0] == len(data) and len(data) % 4 == 0
    assert data[36:40] == b"acsp"
    (count,) = struct.unpack(">I", data[128:132])
    for i in range(count):
        _, offset, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        assert offset % 4 == 0 and offset + size <= len(data)


def test_rgb_colorants_are_the_bradford_adapted_primaries():
    red = _profile(icc.DISPLAY_P3).profile.red_colorant[0]
    np.testing.assert_allclose(red, (0.5151, 0.2412, -0.0011), atol=1e-4)  # as Apple's


@pytest.mark.parametrize("description", RGB_PROFILES)
def test_rgb_to_srgb_matches_the_reference(description):
    image = icc.test_image()
    reference = icc.reference_srgb(image, description)
    converted = icc.delta_e2000(_to_srgb(image, "RGB", RGB_PROFILES[description]), reference)
    ignored = icc.delta_e2000(image, reference)
    _figures(description, converted, ignored)
    assert converted.mean() < 1 and converted.max() < 3
    assert ignored.mean() > 1.5 and ignored.mean() > 10 * converted.mean()


def test_srgb_profile_to_srgb_is_the_identity():
    image = icc.test_image()
    converted = icc.delta_e2000(_to_srgb(image, "RGB", icc.SRGB), image)
    _figures("sRGB", converted)
    assert converted.max() < 0.5


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_to_srgb_matches_the_reference(bits):
    rng = np.random.default_rng(3)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    ramp = np.round(np.linspace(0, top, 96)).astype(dtype)
    gray = np.concatenate([np.tile(ramp, (8, 1)), rng.integers(0, top + 1, (24, 96), dtype)])
    reference = icc.reference_gray_srgb(gray, 2.2)
    converted = icc.delta_e2000(_to_srgb(gray, "L", icc.GRAY_22), reference)
    ignored = icc.delta_e2000(gray, reference)
    _figures(f"Gray gamma 2.2, {bits} bits", converted, ignored)
    assert converted.mean() < 1 and converted.max() < 3


def _cmyk_image() -> np.ndarray:
    """Ramps of each ink alone, of C + M + Y, of each ink over 50 % black, then random."""
    rng = np.random.default_rng(7)
    ramp = np.round(np.linspace(0, 255, 96)).astype(np.uint8)
    rows = []
    for ink in range(4):
        row = np.zeros((96, 4), np.uint8)
        row[:, ink] = ramp
        rows.append(row)
        over_black = row.copy()
        over_black[:, 3] = np.maximum(over_black[:, 3], 128)
        rows.append(over_black)
    rich = np.zeros((96, 4), np.uint8)
    rich[:, :3] = ramp[:, None]
    rows.append(rich)
    ramps = np.repeat(np.stack(rows), 2, axis=0)
    return np.concatenate([ramps, rng.integers(0, 256, (46, 96, 4), np.uint8)])


def test_cmyk_to_srgb_matches_the_reference():
    cmyk = _cmyk_image()
    reference = icc.reference_cmyk_srgb(cmyk)
    converted = icc.delta_e2000(_to_srgb(cmyk, "CMYK", icc.CMYK), reference)
    naive = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB"))  # Pillow's own formula
    ignored = icc.delta_e2000(naive, reference)
    _figures("CMYK", converted, ignored)
    assert converted.mean() < 1 and converted.max() < 3
    assert ignored.mean() > 5


def test_cmyk_a2b0_holds_lab_in_the_legacy_16_bit_encoding():
    """At the 16 corners (nodes of the table) LittleCMS's Lab is the model's to within 8-bit
    Lab's rounding; tables in the 0..65535 encoding would be off by about 0.5 in L and 1 in
    a and b here."""
    np.testing.assert_array_equal(
        icc.encode_lab16(np.array([[100.0, 0, 0], [0, -128, 127]])),
        [[0xFF00, 0x8000, 0x8000], [0, 0, 0xFF00]],
    )
    corners = np.stack(np.meshgrid(*[[0, 255]] * 4, indexing="ij"), -1).reshape(1, 16, 4)
    corners = corners.astype(np.uint8)
    im = Image.fromarray(corners, "CMYK")
    lab = ImageCms.profileToProfile(
        im, _profile(icc.CMYK), ImageCms.createProfile("LAB"), RELATIVE, "LAB"
    )
    assert lab is not None
    raw = np.asarray(lab)
    got = np.concatenate([raw[..., :1] / 2.55, raw[..., 1:].view(np.int8)], axis=-1)
    error = np.abs(got - icc.cmyk_model_lab(corners / 255.0)).max(axis=(0, 1))
    assert error[0] <= 100 / 255 / 2 + 0.01 and max(error[1:]) <= 0.51, error


def test_cmyk_b2a0_takes_srgb_back_to_cmyk():
    """sRGB colours inside the ink model's gamut, to CMYK by ImageCms and back by the model."""
    cmyk = np.random.default_rng(11).integers(0, 256, (32, 32, 4), np.uint8)
    srgb = np.round(icc.reference_cmyk_srgb(cmyk) * 255).astype(np.uint8)
    out = ImageCms.profileToProfile(
        Image.fromarray(srgb), SRGB_OUT, _profile(icc.CMYK), RELATIVE, "CMYK"
    )
    assert out is not None
    back = icc.delta_e2000(icc.reference_cmyk_srgb(np.asarray(out)), srgb)
    _figures("sRGB to CMYK and back", back)
    assert back.mean() < 1.5 and np.percentile(back, 90) < 3


def test_references_take_16_bits():
    image = icc.test_image(bits=16)
    assert image.dtype == np.uint16 and image.min() == 0 and image.max() == 65535
    eight = icc.test_image()
    np.testing.assert_allclose(
        icc.reference_srgb(eight.astype(np.uint16) * 257, "Display P3"),
        icc.reference_srgb(eight, "Display P3"),
        atol=1e-12,
    )
    assert icc.delta_e2000(image, image).max() == 0
