"""ICC profiles built in code, and the sRGB pixels they stand for, computed without ImageCms.

The profiles are ICC v4.3, written byte by byte: RGB and gray display profiles (matrix/TRC,
'para' curves) and a CMYK output profile (lut16 A2B0 and B2A0 over an analytic ink model).
LittleCMS reads them; `getProfileDescription` gives the description back. The references
convert with colour-science's matrices and curves, so a pack that converts through ImageCms
can be compared with pixels that did not.

Import the module (``import icc_profiles``), not its names: pytest would collect a
`test_image` imported into a test file as a test.
"""

from __future__ import annotations

import struct
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
from numpy.typing import NDArray

_present = set(sys.modules)
with warnings.catch_warnings():
    # colour warns on import when Matplotlib is missing; the suite makes warnings errors.
    warnings.simplefilter("ignore")
    import colour
# Without Matplotlib, colour puts mock modules in its place (matplotlib, cycler, ...) into
# sys.modules: out again, for the other tests of the process (PySpark's find_spec of
# matplotlib fails on a module without a spec). colour's conversions do not use them.
for _name in [n for n in set(sys.modules) - _present if isinstance(sys.modules[n], mock.Mock)]:
    del sys.modules[_name]

FloatArray = NDArray[np.float64]
XY = tuple[float, float]
Primaries = tuple[XY, XY, XY]

VERSION = 0x04300000  # ICC v4.3
D65: XY = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])  # the PCS illuminant, in every header
D50: XY = (0.9642 / 2.7891, 1.0 / 2.7891)  # the same white as a chromaticity
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)

SRGB_PRIMARIES: Primaries = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
P3_PRIMARIES: Primaries = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_PRIMARIES: Primaries = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
REC2020_PRIMARIES: Primaries = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
PROPHOTO_PRIMARIES: Primaries = ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001))
PROPHOTO_WHITE: XY = (0.3457, 0.3585)


@dataclass(frozen=True)
class Curve:
    """A parametricCurveType ('para'). Function 0: Y = X**g, params (g,). Function 3:
    Y = (a*X + b)**g for X >= d, else c*X, params (g, a, b, c, d)."""

    function: int
    params: tuple[float, ...]


SRGB_CURVE = Curve(3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
# The BT.709/BT.2020 OETF inverted, with colour's (10-bit) constants 1.099 and 0.018.
BT2020_CURVE = Curve(3, (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 4.5 * 0.018))
# ROMM RGB: 1.8 with a linear foot of slope 1/16 below 1/32.
ROMM_CURVE = Curve(3, (1.8, 1.0, 0.0, 1 / 16, 1 / 32))


def gamma_curve(g: float) -> Curve:
    """A pure power curve."""
    return Curve(0, (g,))


# --- the colour maths the profiles are built from ---------------------------------------


def xy_to_xyz(xy: XY) -> FloatArray:
    """The XYZ of a chromaticity at Y = 1."""
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries: Primaries, white: XY) -> FloatArray:
    """The matrix from linear RGB to XYZ: columns are the primaries, scaled so that
    RGB = (1, 1, 1) is the white at Y = 1."""
    columns = np.column_stack([xy_to_xyz(p) for p in primaries])
    scale = np.linalg.solve(columns, xy_to_xyz(white))
    return columns * scale


def bradford(source: FloatArray, target: FloatArray) -> FloatArray:
    """Bradford adaptation matrix from white `source` XYZ to white `target` XYZ."""
    cones = (BRADFORD @ target) / (BRADFORD @ source)
    result: FloatArray = np.linalg.inv(BRADFORD) @ np.diag(cones) @ BRADFORD
    return result


SRGB_TO_XYZ_D65 = rgb_to_xyz_matrix(SRGB_PRIMARIES, D65)
D65_TO_D50 = bradford(xy_to_xyz(D65), D50_XYZ)


def _lab_from_xyz_d50(xyz: FloatArray) -> FloatArray:
    t = xyz / D50_XYZ
    e = 216 / 24389
    f = np.where(t > e, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def _xyz_d50_from_lab(lab: FloatArray) -> FloatArray:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    e = 6 / 29
    t = np.where(f > e, f**3, 3 * e**2 * (f - 4 / 29))
    result: FloatArray = t * D50_XYZ
    return result


# --- bytes --------------------------------------------------------------------------------


def _s15(values: Sequence[float] | FloatArray) -> bytes:
    """s15Fixed16Number values, big-endian."""
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _xyz_tag(xyz: FloatArray) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(xyz)


def _mluc(text: str) -> bytes:
    """multiLocalizedUnicodeType with one en-US record."""
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16


def _para(curve: Curve) -> bytes:
    return b"para\0\0\0\0" + struct.pack(">HH", curve.function, 0) + _s15(curve.params)


def _sf32(matrix: FloatArray) -> bytes:
    return b"sf32\0\0\0\0" + _s15(matrix.ravel())


def _profile(
    device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]
) -> bytes:
    """Header, tag table and tag data, each tag on a 4-byte boundary."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = [struct.pack(">I", len(tags))], []
    for signature, body in tags:
        table.append(struct.pack(">4sII", signature, offset, len(body)))
        padded = body + b"\0" * (-len(body) % 4)
        data.append(padded)
        offset += len(padded)
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sI4s4sQI12s4s16s28s",
        offset,  # profile size
        b"\0\0\0\0",  # preferred CMM
        VERSION,
        device_class,
        space,
        pcs,
        *(2024, 1, 1, 0, 0, 0),  # date and time
        b"acsp",
        b"\0\0\0\0",  # primary platform
        0,  # flags
        b"\0\0\0\0",  # device manufacturer
        b"\0\0\0\0",  # device model
        0,  # device attributes
        0,  # rendering intent: perceptual
        _s15(D50_XYZ),  # PCS illuminant
        b"\0\0\0\0",  # creator
        b"\0" * 16,  # profile ID (not computed)
        b"\0" * 28,
    )
    assert len(header) == 128
    return header + b"".join(table) + b"".join(data)


def _text_tags(description: str) -> list[tuple[bytes, bytes]]:
    return [(b"desc", _mluc(description)), (b"cprt", _mluc("No copyright, use freely"))]


# --- profiles -----------------------------------------------------------------------------


def rgb_profile(
    description: str,
    primaries: Primaries,
    white: XY = D65,
    trc: Curve | float = SRGB_CURVE,
) -> bytes:
    """An ICC v4.3 RGB display profile (matrix/TRC): the colorants adapted to D50 with
    Bradford, the adaptation in chad, the wtpt D50 as v4 requires of displays. `trc` is a
    Curve, or a number for a pure gamma."""
    adapt = bradford(xy_to_xyz(white), D50_XYZ)
    colorants = adapt @ rgb_to_xyz_matrix(primaries, white)
    curve = _para(trc if isinstance(trc, Curve) else gamma_curve(trc))
    tags = [
        *_text_tags(description),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"chad", _sf32(adapt)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags)


def gray_profile(description: str, gamma: float) -> bytes:
    """An ICC v4.3 gray display profile: kTRC a pure power curve, wtpt D50."""
    tags = [
        *_text_tags(description),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"kTRC", _para(gamma_curve(gamma))),
    ]
    return _profile(b"mntr", b"GRAY", b"XYZ ", tags)


# The ink model: coverage with dot gain, then each ink a filter on the paper's light.
DOT_GAIN = 0.3  # coverage = v * (1 + DOT_GAIN * (1 - v)): 57.5 % at 50 %
INKS = np.array(  # linear sRGB transmittance of each ink at full coverage: C, M, Y, K
    [[0.10, 0.55, 0.90], [0.90, 0.15, 0.55], [0.97, 0.90, 0.10], [0.04, 0.04, 0.045]]
)


def _coverage(v: FloatArray) -> FloatArray:
    return v * (1 + DOT_GAIN * (1 - v))


def _nominal(coverage: FloatArray) -> FloatArray:
    """The inverse of `_coverage`."""
    g = DOT_GAIN
    result: FloatArray = ((1 + g) - np.sqrt((1 + g) ** 2 - 4 * g * coverage)) / (2 * g)
    return result


def _cmyk_linear_srgb(cmyk: FloatArray) -> FloatArray:
    covered = _coverage(np.clip(cmyk, 0, 1))
    factors = 1 - covered[..., :, None] * (1 - INKS)  # (..., ink, channel)
    result: FloatArray = np.prod(factors, axis=-2)
    return result


def cmyk_model_lab(cmyk: FloatArray) -> FloatArray:
    """Lab (D50) of CMYK in [0, 1] (0 is no ink; last axis C, M, Y, K): dot gain, inks as
    filters multiplying linear sRGB light, white paper; then XYZ D65, Bradford to D50."""
    xyz_d65 = _cmyk_linear_srgb(np.asarray(cmyk, np.float64)) @ SRGB_TO_XYZ_D65.T
    return _lab_from_xyz_d50(xyz_d65 @ D65_TO_D50.T)


def _cmyk_from_lab(lab: FloatArray) -> FloatArray:
    """An approximate inverse of `cmyk_model_lab`: for each of 11 black levels, C, M and Y
    by Gauss-Newton on log reflectance; then the black level that fits best, preferring
    one that grows with darkness. Out-of-gamut colours land near the gamut's edge."""
    xyz_d65 = _xyz_d50_from_lab(lab) @ np.linalg.inv(D65_TO_D50).T
    target = np.clip(xyz_d65 @ np.linalg.inv(SRGB_TO_XYZ_D65).T, 1e-4, 1.0)
    density = -np.log(target)
    preferred = np.clip((density.min(axis=-1) - 0.5) / 2.5, 0, 1)
    blacks = np.linspace(0, 1, 11)
    covered = np.zeros((len(blacks), *lab.shape[:-1], 4))
    covered[..., 3] = blacks.reshape((-1,) + (1,) * (lab.ndim - 1))
    for _ in range(10):
        factors = 1 - covered[..., :, None] * (1 - INKS)  # (..., ink, channel)
        residual = np.log(factors).sum(axis=-2) + density
        jacobian = -(1 - INKS[:3]).T / np.swapaxes(factors[..., :3, :], -1, -2)
        normal = np.swapaxes(jacobian, -1, -2)
        system = normal @ jacobian + 1e-6 * np.eye(3)
        step = np.linalg.solve(system, normal @ residual[..., None])[..., 0]
        covered[..., :3] = np.clip(covered[..., :3] - step, 0, 1)
    factors = 1 - covered[..., :, None] * (1 - INKS)
    misfit = (np.log(factors).sum(axis=-2) + density) ** 2
    cost = misfit.sum(axis=-1) + 0.01 * (covered[..., 3] - preferred) ** 2
    best = np.take_along_axis(covered, cost.argmin(axis=0)[None, ..., None], axis=0)[0]
    return _nominal(best)


def _lut16(tables_in: int, tables_out: int, grid: int, clut: NDArray[np.uint16]) -> bytes:
    """lut16Type ('mft2') with identity matrix and identity 256-entry curves."""
    identity = np.round(np.linspace(0, 65535, 256)).astype(">u2").tobytes()
    head = b"mft2\0\0\0\0" + struct.pack(">BBBB", tables_in, tables_out, grid, 0)
    head += _s15(np.eye(3).ravel()) + struct.pack(">HH", 256, 256)
    body = identity * tables_in + clut.astype(">u2").tobytes() + identity * tables_out
    return head + body


def encode_lab16(lab: FloatArray) -> NDArray[np.uint16]:
    """Lab as lut16Type holds it, in v4 profiles too: ICC's legacy 16-bit PCS encoding,
    L = 100 at 0xFF00, a and b = 0 at 0x8000, one unit 256 (not 0..65535 for 0..100)."""
    scaled = np.stack(
        [lab[..., 0] * 652.80, (lab[..., 1] + 128) * 256, (lab[..., 2] + 128) * 256], -1
    )
    return np.clip(np.round(scaled), 0, 65535).astype(np.uint16)


def decode_lab16(encoded: NDArray[Any]) -> FloatArray:
    """The inverse of `encode_lab16`."""
    e = np.asarray(encoded, np.float64)
    return np.stack([e[..., 0] / 652.80, e[..., 1] / 256 - 128, e[..., 2] / 256 - 128], -1)


def cmyk_profile(description: str, grid: int = 9) -> bytes:
    """An ICC v4.3 CMYK output profile, PCS Lab: A2B0 samples `cmyk_model_lab` on `grid`
    points per ink (C slowest), B2A0 its approximate inverse on a 17-point Lab grid."""
    axis = np.linspace(0, 1, grid)
    nodes = np.stack(np.meshgrid(axis, axis, axis, axis, indexing="ij"), -1).reshape(-1, 4)
    a2b = encode_lab16(cmyk_model_lab(nodes))
    lab_axis = np.linspace(0, 65535, 17)
    lab_nodes = np.stack(np.meshgrid(lab_axis, lab_axis, lab_axis, indexing="ij"), -1)
    cmyk = _cmyk_from_lab(decode_lab16(lab_nodes.reshape(-1, 3)))
    b2a = np.round(cmyk * 65535).astype(np.uint16)
    tags = [
        *_text_tags(description),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"A2B0", _lut16(4, 3, grid, a2b)),
        (b"B2A0", _lut16(3, 4, 17, b2a)),
    ]
    return _profile(b"prtr", b"CMYK", b"Lab ", tags)


SRGB = rgb_profile("sRGB IEC61966-2.1", SRGB_PRIMARIES, D65, SRGB_CURVE)
DISPLAY_P3 = rgb_profile("Display P3", P3_PRIMARIES, D65, SRGB_CURVE)
ADOBE_RGB = rgb_profile("Adobe RGB (1998)", ADOBE_PRIMARIES, D65, gamma_curve(563 / 256))
REC2020 = rgb_profile("Rec. 2020 test", REC2020_PRIMARIES, D65, BT2020_CURVE)
PROPHOTO = rgb_profile("ProPhoto RGB test", PROPHOTO_PRIMARIES, PROPHOTO_WHITE, ROMM_CURVE)
GRAY_22 = gray_profile("Gray gamma 2.2", 2.2)
CMYK = cmyk_profile("CMYK test press")

# Each RGB profile's description, and the colour-science colourspace of the same primaries,
# white and curve.
COLOURSPACES = {
    "sRGB IEC61966-2.1": "sRGB",
    "sRGB": "sRGB",
    "Display P3": "Display P3",
    "Adobe RGB (1998)": "Adobe RGB (1998)",
    "Rec. 2020 test": "ITU-R BT.2020",
    "ProPhoto RGB test": "ProPhoto RGB",
}


# --- references ---------------------------------------------------------------------------


def _unit(pixels: NDArray[Any]) -> FloatArray:
    """Integers scaled to [0, 1] by their type's maximum; floats as they are."""
    arr = np.asarray(pixels)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / np.iinfo(arr.dtype).max
    return arr.astype(np.float64)


def _encode_srgb(linear: NDArray[Any]) -> FloatArray:
    return np.asarray(colour.models.eotf_inverse_sRGB(np.clip(linear, 0, 1)), np.float64)


def _colourspace(name: str) -> Any:
    space = colour.RGB_COLOURSPACES[name].copy()
    space.use_derived_transformation_matrices(True)  # from the primaries, as the profiles
    return space


def reference_srgb(rgb: NDArray[Any], source: str) -> FloatArray:
    """sRGB-encoded floats in [0, 1] of `rgb` (uint8 or uint16, H x W x 3) in the profile
    described `source` (a key of COLOURSPACES, or a colour-science name): the source's
    curve decoded, linear RGB to linear sRGB (Bradford if the whites differ, as relative
    colorimetric through a D50 PCS does), clipped, sRGB-encoded."""
    space = _colourspace(COLOURSPACES.get(source, source))
    linear = space.cctf_decoding(_unit(rgb))
    srgb = colour.RGB_to_RGB(
        linear, space, _colourspace("sRGB"), chromatic_adaptation_transform="Bradford"
    )
    return _encode_srgb(srgb)


def reference_gray_srgb(gray: NDArray[Any], gamma: float) -> FloatArray:
    """sRGB-encoded floats of gray pixels (H x W or H x W x 1) in a pure-gamma profile:
    the luminance Y = v**gamma becomes the sRGB neutral of that Y. H x W x 3, R = G = B."""
    arr = _unit(gray)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.repeat(_encode_srgb(arr**gamma)[..., None], 3, axis=-1)


def reference_cmyk_srgb(cmyk: NDArray[Any]) -> FloatArray:
    """sRGB-encoded floats of CMYK pixels (uint8, H x W x 4, 0 is no ink) in `CMYK`'s model:
    `cmyk_model_lab`, Lab to XYZ D50, Bradford to D65, linear sRGB, clipped, encoded."""
    xyz_d50 = colour.Lab_to_XYZ(cmyk_model_lab(_unit(cmyk)), D50)
    linear = colour.XYZ_to_RGB(
        xyz_d50, _colourspace("sRGB"), D50, chromatic_adaptation_transform="Bradford"
    )
    return _encode_srgb(linear)


def delta_e2000(srgb_a: NDArray[Any], srgb_b: NDArray[Any]) -> FloatArray:
    """Per-pixel CIEDE2000 between two sRGB-encoded images (uint8, uint16 or floats in
    [0, 1]; H x W x 3, or gray as H x W or H x W x 1), in Lab of the D65 white."""

    def lab(srgb: NDArray[Any]) -> FloatArray:
        arr = _unit(srgb)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        return np.asarray(colour.XYZ_to_Lab(colour.sRGB_to_XYZ(arr, D65), D65), np.float64)

    return np.asarray(colour.delta_E(lab(srgb_a), lab(srgb_b), method="CIE 2000"), np.float64)


def test_image(height: int = 64, width: int = 96, bits: int = 8, seed: int = 0) -> NDArray[Any]:
    """An RGB image (H x W x 3, uint8 or uint16) over the whole cube, top to bottom: hues
    from black through the full hue to white, hues muted towards mid gray, the primaries
    and secondaries at full and half level, a neutral ramp, then random colours."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)
    band = max(height // 4, 1)
    rows = []
    # hue across, lightness down (black to the full hue to white), then muted hues
    hue = np.stack([np.abs(x * 6 - 3) - 1, 2 - np.abs(x * 6 - 2), 2 - np.abs(x * 6 - 4)], -1)
    hue = np.clip(hue, 0, 1)
    for t in np.linspace(0, 1, band):
        rows.append(np.where(t < 0.5, hue * 2 * t, hue + (1 - hue) * (2 * t - 1)))
    for t in np.linspace(0.2, 0.8, max(height // 8, 1)):
        rows.append(0.5 + (hue - 0.5) * t)
    patches = np.array(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0]]
    )
    patches = np.concatenate([patches, patches * 0.5])
    few = max(height // 16, 1)
    rows.extend([patches[(np.arange(width) * len(patches)) // width]] * few)
    rows.extend([np.repeat(x[:, None], 3, axis=1)] * few)  # the neutral ramp
    rows.extend(rng.random((max(height - len(rows), 0), width, 3)))
    image = np.stack(rows[:height])
    top = (1 << bits) - 1
    return np.round(image * top).astype(np.uint8 if bits == 8 else np.uint16)
