"""Where annotations go when pack resizes the pixels (each ``--resize-mode``, and
``--max-side``), by the rules of ``pixels.resize``. (Images with annotations are stored
upright, their EXIF orientation applied, and annotations describe the displayed image:
orientation moves nothing, but for boxes given on the pixels as stored, before it, which
``oriented_boxes`` turns upright with them.)

Boxes are ``(N, 4)`` float64 arrays of ``x0, y0, x1, y1`` as fractions of the image's width
and height (0..1, x to the right, y down), in continuous coordinates: 0 is the left edge of
the first pixel column, 1 the right edge of the last one. Pillow's resize maps the whole
extent onto the whole new extent, so a fraction stays put under a plain scale; only the
crop of ``fill`` and the border of ``pad`` move boxes.

Points (keypoints) are ``(M, 2)`` arrays of ``x, y`` in the same fractions, moved by the same
mapping as box corners (``resized_points``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pixels import Resize, plan_resize

if TYPE_CHECKING:
    import numpy as np


def _offsets(plan: tuple[int, int, int, int], opts: Resize) -> tuple[int, int]:
    """Where the scaled image's top-left corner lands in the new one, in its pixels."""
    sh, sw, th, tw = plan
    if opts.mode == "fill":  # the centre crop: offsets as pixels.resize takes them
        return -((sw - tw) // 2), -((sh - th) // 2)
    return (tw - sw) // 2, (th - sh) // 2  # pad: the scaled image centred in the new one


def resized_boxes(
    boxes: np.ndarray, height: int, width: int, opts: Resize
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of a ``height`` x ``width`` displayed image, moved into the image that
    ``pixels.resize`` makes of it: ``(boxes, kept, area_scale)``. ``kept`` marks the boxes
    with some area left inside the new image (``fill``'s crop can cut one out whole); the
    returned boxes are those, clipped to it. ``area_scale``, one per kept box, turns its
    area in source pixels into the area of what is left of it, in the new image's pixels."""
    import numpy as np

    plan = plan_resize(height, width, opts)
    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    scale = 1.0
    if plan is not None:
        sh, sw, th, tw = plan
        scale = (sh / height) * (sw / width)
        if (sh, sw) != (th, tw):
            left, top = _offsets(plan, opts)
            out[:, 0::2] = (out[:, 0::2] * sw + left) / tw
            out[:, 1::2] = (out[:, 1::2] * sh + top) / th
    whole = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    np.clip(out, 0.0, 1.0, out=out)
    kept = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    # what a crop leaves of each box: its area shrinks with it
    share = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1]) / np.maximum(whole, 1e-300)
    return out[kept], kept, scale * share[kept]


def oriented_boxes(boxes: np.ndarray, orientation: int) -> np.ndarray:
    """Boxes on an image's stored pixels, moved where the pixels go when its EXIF
    ``orientation`` is applied (by the steps of ``pixels.orient``)."""
    import numpy as np

    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    if orientation >= 5:
        out = out[:, [1, 0, 3, 2]]
    if orientation in (3, 4, 7, 8):
        out[:, [1, 3]] = 1.0 - out[:, [3, 1]]
    if orientation in (2, 3, 6, 7):
        out[:, [0, 2]] = 1.0 - out[:, [2, 0]]
    return out


def resized_points(
    points: np.ndarray, height: int, width: int, opts: Resize
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a ``height`` x ``width`` displayed image, moved as ``resized_boxes`` moves
    box corners: ``(points, inside)``, ``inside`` False for the points ``fill``'s crop
    leaves outside the new image (their coordinates are then meaningless). Points are
    clipped to the image first, as boxes are (they may pass its edge by the slack)."""
    import numpy as np

    plan = plan_resize(height, width, opts)
    out = np.clip(np.asarray(points, np.float64).reshape(-1, 2), 0.0, 1.0)
    if plan is not None:
        sh, sw, th, tw = plan
        if (sh, sw) != (th, tw):
            left, top = _offsets(plan, opts)
            out[:, 0] = (out[:, 0] * sw + left) / tw
            out[:, 1] = (out[:, 1] * sh + top) / th
    inside = np.all((out >= 0.0) & (out <= 1.0), axis=1)
    return out, inside
