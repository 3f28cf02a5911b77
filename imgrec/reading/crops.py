"""Crop windows for training and evaluation, computed from a decoded image's size so that a
JPEG can be decoded inside the window only (``tf.image.decode_and_crop_jpeg``). Each rule is
stated once, here, for both readers: ``window_function`` builds it in TensorFlow's graph
(``imgrec.dataset``), ``window_of`` computes it in Python (``RecordSource``).

- ``random``: the Inception / ResNet training crop: a window covering 8% to 100% of the
  image (and at least 10% of it: ``min_object_covered`` of the whole image) with an aspect
  ratio (width / height) from 3/4 to 4/3, the whole image when ten draws fail; then a
  left-right flip with probability 1/2. TensorFlow draws it with a stateless seed per
  record (``tf.image.stateless_sample_distorted_bounding_box``); the Python rule follows
  that kernel's steps with NumPy's generator, so the windows have the same distribution,
  not the same draws (TensorFlow ties its seeds to the order it reads in).
- ``center``: the evaluation crop: a centred square of the shorter side times
  size / (size + 32) (224 of 256, as the reference ResNet input does). The same window in
  both readers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CROPS = ("random", "center")
CENTER_PADDING = 32
AREA = (0.08, 1.0)  # of the image
ASPECT = (3 / 4, 4 / 3)  # width / height
COVERED = 0.1  # of the whole image, at least
ATTEMPTS = 10

Window = tuple[int, int, int, int]  # y, x, height, width


def window_function(tf: Any, crop: str, size: tuple[int, int], seed: Any) -> Callable[[Any], Any]:
    """``decoded [height, width] -> [y, x, h, w]`` (int32) for ``crop``; ``seed`` is the
    record's stateless seed (shape [2]) for ``random``."""

    def random_window(hw: Any) -> Any:
        hw = tf.cast(hw, tf.int32)
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.concat([hw, [1]], 0),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seed,
            min_object_covered=COVERED,
            aspect_ratio_range=ASPECT,
            area_range=AREA,
            max_attempts=ATTEMPTS,
            use_image_if_no_bounding_boxes=True,
        )
        return tf.stack([begin[0], begin[1], extent[0], extent[1]])

    def center_window(hw: Any) -> Any:
        hw = tf.cast(hw, tf.int32)
        fraction = min(size) / (min(size) + CENTER_PADDING)
        side = tf.cast(fraction * tf.cast(tf.reduce_min(hw), tf.float64), tf.int32)
        side = tf.maximum(side, 1)
        return tf.stack([(hw[0] - side + 1) // 2, (hw[1] - side + 1) // 2, side, side])

    return random_window if crop == "random" else center_window


def window_of(crop: str, hw: tuple[int, int], size: tuple[int, int], key: Any) -> Window:
    """``crop``'s window of an image of ``hw`` (height, width) resized to ``size`` next,
    in Python: the same for the same ``key`` (NumPy ``SeedSequence`` entropy: a record's
    seed, epoch and index) and ``hw``, as a stateless seed gives TensorFlow's."""
    h, w = int(hw[0]), int(hw[1])
    if crop == "center":
        side = max(int(min(size) / (min(size) + CENTER_PADDING) * min(h, w)), 1)
        return (h - side + 1) // 2, (w - side + 1) // 2, side, side
    rng = np.random.default_rng(key)
    for _ in range(ATTEMPTS):
        aspect = np.float32(rng.uniform(*ASPECT))
        window = _random_crop(h, w, aspect, rng)
        if window is not None and window[2] * window[3] >= max(COVERED * h * w, 1.0):
            return window
    return 0, 0, h, w


def flipped(key: Any) -> bool:
    """Whether the random crop of ``key`` (``window_of``'s) is also mirrored left-right:
    probability 1/2, drawn from its own stream."""
    return bool(np.random.default_rng([*np.atleast_1d(key), 1]).random() < 0.5)


def _random_crop(h: int, w: int, aspect: np.float32, rng: np.random.Generator) -> Window | None:
    """One draw of the random crop, in the steps of TensorFlow's kernel: a height uniform
    between the smallest and the largest that the area range allows at this aspect ratio
    (width its rounded product), nudged by one where rounding left the area outside the
    range, then a position uniform over ``[0, h - height)`` and ``[0, w - width)`` (the
    kernel's own half-open ranges); None where nothing fits."""
    f32 = np.float32
    low, high = f32(AREA[0]) * f32(w * h), f32(AREA[1]) * f32(w * h)
    tall = int(np.rint(np.sqrt(low / aspect)))
    most = int(np.rint(np.sqrt(high / aspect)))
    if int(np.rint(f32(most) * aspect)) > w:  # the tallest whose width still fits
        most = int((w + 0.5 - 1e-7) / aspect)
        if int(np.rint(f32(most) * aspect)) > w:
            most -= 1
    most = min(most, h)
    tall = min(tall, most)
    if tall < most:
        tall += int(rng.integers(0, most - tall + 1))
    wide = int(np.rint(f32(tall) * aspect))
    if wide * tall < low:
        tall += 1
        wide = int(np.rint(f32(tall) * aspect))
    if wide * tall > high:
        tall -= 1
        wide = int(np.rint(f32(tall) * aspect))
    if not (low <= wide * tall <= high and 0 < wide <= w and 0 < tall <= h):
        return None
    y = int(rng.integers(0, h - tall)) if tall < h else 0
    x = int(rng.integers(0, w - wide)) if wide < w else 0
    return y, x, tall, wide
