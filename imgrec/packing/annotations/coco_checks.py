"""What makes one COCO annotation unusable (its image is then skipped, with the first such
problem as the reason): its bbox, category, iscrowd and area; its segmentation (polygons, or
a run-length mask in either of COCO's forms), kept with the box as JSON text for the
instance masks; and keypoints.

Keypoints are [x, y, v] per point, as many as the category names. COCO's coordinates are
integer pixel indices (0..width - 1, as its annotation tool clicked pixels), so a point is
taken at the centre of its pixel: (x + 0.5, y + 0.5) in the continuous coordinates of the
boxes (detectron2 reads them so too). Points with v = 0 (not labelled; COCO writes 0, 0)
keep their (0, 0).

``rle_counts`` and ``rle_mask`` decode COCO's run lengths (pycocotools' ``maskApi.c``).
A box outside the width and height the file states is not checked here: the packer checks
boxes against the image itself, once it is loaded.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from .coco_index import Box

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

KEYPOINT_FLAGS = (0, 1, 2)  # not labelled, labelled but not visible, visible
_FLAGS = frozenset(KEYPOINT_FLAGS)
_SHOWN = 8  # numbers of a list shown in a message


def rle_counts(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleToString``): each
    count in 5-bit groups, least significant first, as characters from "0" (48); 0x20 in a
    group means another follows, 0x10 in the last one makes the number negative; from the
    fourth count on, each is stored as its difference from the count two before it.
    ValueError when ``text`` is not that."""
    counts: list[int] = []
    at = 0
    while at < len(text):
        value = shift = 0
        while True:
            if at == len(text):
                raise ValueError("it ends inside a number")
            group = ord(text[at]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"{text[at]!r} at character {at} is not one of its digits")
            at += 1
            value |= (group & 0x1F) << shift
            shift += 5
            if not group & 0x20:
                if group & 0x10:
                    value -= 1 << shift
                break
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError(f"run {len(counts) + 1} has a negative length")
        counts.append(value)
    return counts


def rle_mask(counts: Sequence[int], height: int, width: int) -> npt.NDArray[np.uint8]:
    """The mask (height x width, 1 inside, 0 outside) of COCO's run lengths: runs of 0, 1,
    0, ... down the columns, left to right (pycocotools' ``decode``). ValueError when the
    runs do not cover height x width pixels."""
    import numpy as np

    if sum(counts) != height * width:
        raise ValueError(f"its runs cover {sum(counts)} pixels, not {height} x {width}")
    runs = np.arange(len(counts)) % 2
    return np.repeat(runs.astype(np.uint8), counts).reshape(width, height).T


@dataclass(frozen=True)
class Category:
    name: str
    keypoints: int | None  # how many keypoints it names, if it names them
    names: tuple[str, ...] = ()  # their names


@dataclass
class Counts:
    """Annotations with a segmentation (packed as instance masks) and with keypoints
    (``unnamed``: of a category that names none, so not packed)."""

    masks: int = 0
    plain: int = 0  # without a segmentation
    keypoints: int = 0
    unnamed: int = 0


class Checks:
    """One annotation's checks, against the categories; ``special``: the strings that
    stand for the file's NaN and infinities (see ``json_stream``), if it has them."""

    def __init__(
        self, where: str, categories: dict[int, Category], special: dict[str, float]
    ) -> None:
        self._where = where
        self._categories = categories
        self._special = special

    def annotation(
        self, item: dict[str, Any], ident: int, size: tuple[int | None, int | None], counts: Counts
    ) -> tuple[Box | None, str | None]:
        """(its box, None), or (None, the problem) for an annotation of an image of ``size``
        (height, width, None where the file does not state it)."""
        bbox = item.get("bbox")
        what = self._box(bbox)
        label = item.get("category_id")
        if what is None and (not _is_int(label) or label not in self._categories):
            what = f"category_id {label!r} is not one of the ids in 'categories'"
        crowd = item.get("iscrowd", 0)
        if what is None and crowd not in (0, 1):
            what = f"iscrowd is {crowd!r}, not 0 or 1"
        area = item.get("area")
        if what is None and area is not None and not self._finite(area, minimum=0):
            what = f"area is {self._show(area)}, not a number of pixels"
        segmentation = item.get("segmentation")
        if segmentation:
            counts.masks += 1
            what = what or self._segmentation(segmentation, size)
        else:
            counts.plain += 1
        keypoints = item.get("keypoints")
        points = None
        if keypoints:
            counts.keypoints += 1
            category = self._categories.get(label) if _is_int(label) else None
            what = what or self._keypoints(keypoints, category)
            if what is None and category is not None and category.keypoints:
                points = _continuous(keypoints)
            elif what is None:
                counts.unnamed += 1
        if what is not None:
            return None, f"{self._where}: annotation id {ident}: {what}; correct or remove it"
        x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
        pixels = None if area is None else float(area)
        shape = json.dumps(segmentation, separators=(",", ":")) if segmentation else None
        return (x, y, x + w, y + h, cast(int, label), ident, pixels, bool(crowd), points,
                shape), None  # fmt: skip

    def _number(self, value: object) -> float | None:
        """The number ``value`` is (NaN for the file's NaN), or None if not one."""
        if isinstance(value, str) and value in self._special:
            return self._special[value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    def _finite(self, value: object, minimum: float = -math.inf) -> bool:
        number = self._number(value)
        return number is not None and math.isfinite(number) and number >= minimum

    def _show(self, value: object) -> str:
        """``value`` as the file writes it (NaN, Infinity), lists cut short."""
        if isinstance(value, list):
            shown = ", ".join(self._show(v) for v in value[:_SHOWN])
            return f"[{shown}{', ...' if len(value) > _SHOWN else ''}]"
        number = self._number(value)
        if number is not None and not math.isfinite(number):
            return "NaN" if math.isnan(number) else ("-" if number < 0 else "") + "Infinity"
        return repr(value)

    def _box(self, bbox: object) -> str | None:
        if bbox is None:
            return "it has no bbox"
        if not isinstance(bbox, list) or len(bbox) != 4:
            return f"bbox {self._show(bbox)} is not 4 numbers [x, y, width, height]"
        numbers = [self._number(v) for v in bbox]
        if any(n is None for n in numbers):
            return f"bbox {self._show(bbox)} is not 4 numbers [x, y, width, height]"
        if not all(math.isfinite(n) for n in numbers if n is not None):
            return f"bbox {self._show(bbox)} has a NaN or infinite number"
        if not (numbers[2] or 0) > 0 or not (numbers[3] or 0) > 0:
            return f"bbox {self._show(bbox)} has a width or height of 0 or less"
        return None

    def _segmentation(
        self, segmentation: object, size: tuple[int | None, int | None]
    ) -> str | None:
        if isinstance(segmentation, list):
            for k, polygon in enumerate(segmentation, 1):
                if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                    return (
                        f"polygon {k} of its segmentation is {self._show(polygon)}, not x, y"
                        " pairs of at least 3 points"
                    )
                if not _all_finite(polygon):
                    return f"polygon {k} of its segmentation has a NaN, infinite or non-number"
            return None
        if isinstance(segmentation, dict):
            return self._rle(segmentation, size)
        return "its segmentation is neither polygons (a list) nor a run-length mask (an object)"

    def _rle(self, rle: dict[str, Any], size: tuple[int | None, int | None]) -> str | None:
        shape, counts = rle.get("size"), rle.get("counts")
        if not isinstance(shape, list) or len(shape) != 2 or not all(_is_int(v) for v in shape):
            return f"the size of its run-length mask is {self._show(shape)}, not [height, width]"
        if None not in size and tuple(shape) != size:
            return (
                f"its run-length mask's size [height, width] is {shape}, not the image's"
                f" [{size[0]}, {size[1]}]"
            )
        if isinstance(counts, str):
            try:
                runs = rle_counts(counts)
            except ValueError as e:
                return f"the counts of its run-length mask are not COCO's compressed form: {e}"
        elif isinstance(counts, list) and all(_is_int(v) and v >= 0 for v in counts):
            runs = counts
        else:
            return "the counts of its run-length mask are neither a string nor whole numbers"
        if sum(runs) != shape[0] * shape[1]:
            return (
                f"its run-length mask covers {sum(runs)} pixels, not its size"
                f" {shape[0]} x {shape[1]}"
            )
        return None

    def _keypoints(self, keypoints: object, category: Category | None) -> str | None:
        if not isinstance(keypoints, list) or len(keypoints) % 3:
            return f"its keypoints {self._show(keypoints)} are not x, y, v triples"
        # The common case at C speed (a person_keypoints file has 51 numbers an annotation):
        # all finite numbers, none a bool, every v a flag; else look for the culprit.
        plain = _all_finite(keypoints) and bool not in set(map(type, keypoints))
        if not (plain and set(keypoints[2::3]) <= _FLAGS) and (wrong := self._keypoint(keypoints)):
            return wrong
        if category is not None and category.keypoints not in (None, len(keypoints) // 3):
            return (
                f"it has {len(keypoints) // 3} keypoints where its category names"
                f" {category.keypoints}"
            )
        return None

    def _keypoint(self, keypoints: list[Any]) -> str | None:
        """The first keypoint that is not numbers x, y and a flag v."""
        for k in range(0, len(keypoints), 3):
            x, y, v = keypoints[k : k + 3]
            if not self._finite(x) or not self._finite(y) or v not in KEYPOINT_FLAGS:
                return (
                    f"keypoint {k // 3 + 1} is {self._show([x, y, v])}: x and y must be"
                    " numbers and v 0, 1 or 2"
                )
        return None


def _continuous(keypoints: list[Any]) -> bytes:
    """COCO's checked [x, y, v] triples as float64 bytes, labelled points moved to their
    pixel's centre (see the module's note)."""
    out = array("d", keypoints)
    for k in range(2, len(out), 3):
        if out[k]:
            out[k - 2] += 0.5
            out[k - 1] += 0.5
    return out.tobytes()


def _all_finite(values: list[Any]) -> bool:
    try:
        return all(map(math.isfinite, values))
    except TypeError:  # not a number (the file's NaN or infinities among them: see ``Checks``)
        return False


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
