"""ICC colour profiles: which of the common ones an image carries (the classes ``inspect``
counts), and its pixels converted to sRGB through LittleCMS (``--color srgb``).

Conversions use the relative colorimetric intent without black-point compensation: colours
inside sRGB keep their measured values, the source's white becomes sRGB's white, and colours
outside sRGB are clipped to its gamut. Matrix profiles (Display P3, Adobe RGB) have only
this intent; for CMYK profiles it is the one that keeps in-gamut colours exact.

8-bit pixels go through Pillow's ImageCms; 16-bit ones through imagecodecs' LittleCMS,
which converts at 16 bits (Pillow has no 16-bit colour mode). Transforms are cached per
thread: a LittleCMS transform keeps a cache of its own and must not be shared.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageCms

if TYPE_CHECKING:
    import numpy as np

KINDS = ("sRGB", "Display P3", "Adobe RGB", "gray", "CMYK", "other")
NONE = "none"  # no profile: the pixels are taken as sRGB
INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC

# Chromaticities (x, y) of the red, green and blue colorants of profiles in the ICC's D50
# connection space (Bradford-adapted from D65, as real profiles store them).
_COLORANTS = {
    "sRGB": ((0.6484, 0.3309), (0.3212, 0.5979), (0.1559, 0.0661)),
    "Display P3": ((0.6820, 0.3193), (0.2846, 0.6746), (0.1559, 0.0661)),
    "Adobe RGB": ((0.6484, 0.3309), (0.2302, 0.7016), (0.1559, 0.0661)),
}
_NAMES = (("sRGB", "sRGB"), ("IEC61966-2", "sRGB"), ("Display P3", "Display P3"),
          ("Adobe RGB", "Adobe RGB"))  # fmt: skip


class NeedsExtra(Exception):
    """A conversion that needs a package that is not installed; ``str()`` says which."""


class Unusable(Exception):
    """Little CMS reads the profile but cannot convert with it; ``str()`` says why."""


@dataclass(frozen=True)
class Profile:
    """An ICC profile an image carries: its bytes, its class (one of KINDS), its colour
    space ("RGB", "GRAY", "CMYK", ...; "" when unreadable) and description."""

    data: bytes
    kind: str
    space: str
    description: str

    @property
    def converts(self) -> bool:
        """Whether --color srgb converts the pixels it describes."""
        return self.kind != "sRGB" and self.space in ("RGB", "GRAY", "CMYK")

    def describes(self, base: int) -> bool:
        """Whether it describes pixels of ``base`` colour channels (3 RGB, 1 gray)."""
        return self.space == ("RGB" if base == 3 else "GRAY")


def profile_of(data: bytes | None) -> Profile | None:
    """The profile in ``data`` (an image's ``icc_profile``); None when there is none."""
    return _profile(bytes(data)) if data else None


@lru_cache(maxsize=256)
def _profile(data: bytes) -> Profile:
    try:
        p = ImageCms.ImageCmsProfile(io.BytesIO(data)).profile
        space = p.xcolor_space.strip()
        description = (p.profile_description or "").strip()
    except Exception:  # a damaged profile: counted, never converted
        return Profile(data, "other", "", "")
    return Profile(data, _kind(p, space, description), space, description)


def _kind(p: Any, space: str, description: str) -> str:
    if space == "CMYK":
        return "CMYK"
    if space == "GRAY":
        return "gray"
    if space != "RGB":
        return "other"
    for word, kind in _NAMES:
        if word.lower() in description.lower():
            return kind
    try:
        found = [c[1][:2] for c in (p.red_colorant, p.green_colorant, p.blue_colorant)]
    except (TypeError, IndexError):
        return "other"
    for kind, known in _COLORANTS.items():
        pairs = zip(found, known, strict=True)
        if all(abs(a - b) < 0.003 for xy, ref in pairs for a, b in zip(xy, ref, strict=True)):
            return kind
    return "other"


def to_srgb(arr: np.ndarray, profile: Profile) -> np.ndarray:
    """``arr`` (HWC; RGB, gray or CMYK as ``profile`` says, then any alpha; uint8 or
    uint16) in sRGB: 3 channels from RGB or CMYK, 1 from gray (sRGB's neutral tone curve),
    alpha kept as it is, dtype kept."""
    import numpy as np

    colour_channels = {"RGB": 3, "GRAY": 1, "CMYK": 4}[profile.space]
    colour, alpha = arr[..., :colour_channels], arr[..., colour_channels:]
    try:
        if arr.dtype == np.uint8:
            out = _pillow(np.ascontiguousarray(colour), profile)
        else:
            out = _lcms16(np.ascontiguousarray(colour), profile)
    except (ImageCms.PyCMSError, ValueError, RuntimeError) as e:  # imagecodecs: CmsError
        raise Unusable(f"its ICC profile cannot be applied ({type(e).__name__}: {e})") from None
    if profile.space == "GRAY":
        out = out[..., 1:2]  # neutral: R = G = B but for rounding; G is nearest luminance
    return np.ascontiguousarray(np.concatenate([out, alpha], axis=2) if alpha.size else out)


_SRGB = ImageCms.createProfile("sRGB")
_SRGB_BYTES = ImageCms.ImageCmsProfile(_SRGB).tobytes()
_local = threading.local()
_PILLOW_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}


def _transforms() -> dict[tuple[str, str], Any]:
    cache: dict[tuple[str, str], Any] | None = getattr(_local, "transforms", None)
    if cache is None:
        cache = _local.transforms = {}
    return cache


def _key(profile: Profile, how: str) -> tuple[str, str]:
    return hashlib.sha256(profile.data).hexdigest(), how


def _pillow(colour: np.ndarray, profile: Profile) -> np.ndarray:
    import numpy as np

    mode = _PILLOW_MODES[profile.space]
    cache = _transforms()
    transform = cache.get(_key(profile, "8"))
    if transform is None:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile.data))
        transform = ImageCms.buildTransform(source, _SRGB, mode, "RGB", INTENT)
        if len(cache) > 64:
            cache.clear()
        cache[_key(profile, "8")] = transform
    image = Image.frombuffer(mode, (colour.shape[1], colour.shape[0]), colour.tobytes())
    converted = ImageCms.applyTransform(image, transform)
    assert converted is not None  # None only when converting in place
    return np.asarray(converted)


def _lcms16(colour: np.ndarray, profile: Profile) -> np.ndarray:
    import numpy as np

    try:
        import imagecodecs
    except ImportError:
        raise NeedsExtra(
            "a 16-bit image with a colour profile, which --color srgb converts at 16 bits"
            " with imagecodecs: pip install 'imgrec[color]'"
        ) from None
    space = {"RGB": "rgb", "GRAY": "gray", "CMYK": "cmyk"}[profile.space]
    data = colour[..., 0] if space == "gray" else colour
    out: np.ndarray = imagecodecs.cms_transform(
        data, profile.data, _SRGB_BYTES, colorspace=space, outcolorspace="rgb",
        outdtype=np.uint16, intent=int(INTENT),
    )  # fmt: skip
    return out
