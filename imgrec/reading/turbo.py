"""JPEG decoding for readers without TensorFlow through ``simplejpeg`` (libjpeg-turbo,
straight into a NumPy array): the pixels Pillow's decode gives (the same accurate integer
IDCT and fancy chroma upsampling), in about 40% of its time, which goes mostly to Pillow's
copy of its own image buffer into NumPy.

Only where the pixels are sure to be Pillow's: a YCbCr or gray JPEG that decodes without a
libjpeg warning (``strict``), and a DCT scale 1/r only where no other of libjpeg-turbo's
scales (3/8, 5/8, ...) reaches the same size (both sides at least 16 pixels). Anything
else is None, and the caller decodes with Pillow: CMYK and YCCK (Pillow's own conversion),
damaged files Pillow reads despite a warning, tiny scaled images."""

from __future__ import annotations

import numpy as np
import simplejpeg

SPACES = {"YCbCr": "RGB", "Gray": "GRAY"}  # the JPEG's colour space -> what Pillow gives
SMALLEST_SCALED = 16  # a side below this may map to one of libjpeg-turbo's other scales


def header(data: bytes) -> tuple[int, int, str] | None:
    """(height, width, colour space) of a JPEG this module decodes, else None."""
    try:
        h, w, space, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (int(h), int(w), str(space)) if space in SPACES else None


def decode(data: bytes, found: tuple[int, int, str], ratio: int) -> np.ndarray | None:
    """The JPEG (``header``'s ``found``) decoded at 1/``ratio`` (HWC uint8, 1 or 3
    channels), or None where this cannot promise Pillow's pixels."""
    h, w, space = found
    size = (-(-h // ratio), -(-w // ratio))  # libjpeg's scaled size rounds up
    if ratio > 1 and min(h, w) < SMALLEST_SCALED:
        return None
    try:
        arr: np.ndarray = simplejpeg.decode_jpeg(
            data,
            colorspace=SPACES[space],
            min_height=size[0] if ratio > 1 else 0,
            min_width=size[1] if ratio > 1 else 0,
        )
    except ValueError:  # strict: any libjpeg warning (a damaged file) goes to Pillow
        return None
    return arr if arr.shape[:2] == size else None
