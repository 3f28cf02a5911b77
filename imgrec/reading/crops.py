"""Crop windows for training and evaluation, computed from a decoded image's size so that a
JPEG can be decoded inside the window only (``tf.image.decode_and_crop_jpeg``).

- ``random``: the Inception / ResNet training crop: a window covering 8% to 100% of the
  image with an aspect ratio from 3/4 to 4/3 (the whole image when ten draws fail), drawn
  with a stateless seed, so that a seed gives the same crops run after run.
- ``center``: the evaluation crop: a centred square of the shorter side times
  size / (size + 32) (224 of 256, as the reference ResNet input does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CROPS = ("random", "center")
CENTER_PADDING = 32


def window_function(tf: Any, crop: str, size: tuple[int, int], seed: Any) -> Callable[[Any], Any]:
    """``decoded [height, width] -> [y, x, h, w]`` (int32) for ``crop``; ``seed`` is the
    record's stateless seed (shape [2]) for ``random``."""

    def random_window(hw: Any) -> Any:
        hw = tf.cast(hw, tf.int32)
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.concat([hw, [1]], 0),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seed,
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
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
