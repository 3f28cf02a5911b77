"""Instance masks: each object's segmentation (``PixelBox.shape``, as a COCO file gives
it) drawn in the frame the annotation file describes, the image as displayed (its EXIF
orientation applied) at its displayed size, then moved exactly as the pixels are moved
(``pixels.resize``: every ``--resize-mode`` and ``--max-side``, by nearest neighbour, so a
mask stays 0 and 1), and stored as a PNG (one channel, 1 inside, 0 outside) per object.

- Polygons are filled with Pillow's ``ImageDraw.polygon``, their points as the file gives
  them. Pillow also fills the pixels the outline passes through, so a mask may differ from
  pycocotools' ``frPyObjects`` + ``decode`` (COCO's own rasteriser) by a pixel along the
  edges: a rectangle from x 10 to 30 covers columns 10 to 30, where COCO's covers 10 to 29
  (of 200 random star-shaped polygons, this way differed least from pycocotools'; moving the
  points by half a pixel differed more).
- Run-length masks (either of COCO's forms) are decoded as pycocotools does (down the
  columns); their ``size`` must be the displayed image's [height, width].
- An object without a segmentation, in a dataset where others have one, gets its box
  filled (the pixels whose centres are inside it): the OD API and the Model Garden need a
  mask per object once there are masks, and a mask loss taught that such an object has no
  pixels (an all-zero mask) would be wronger than one taught its box.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from ...images import pixels
from . import PixelBox
from .coco_checks import rle_counts, rle_mask

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class BadShape(ValueError):
    """A segmentation that does not fit the image (the packer skips the image with it)."""


def drawn(box: PixelBox, height: int, width: int) -> npt.NDArray[np.uint8]:
    """The object's mask in the displayed ``height`` x ``width`` frame: 1 inside, 0 out."""
    import numpy as np

    shape = None if box.shape is None else json.loads(box.shape)
    if isinstance(shape, dict):
        size = shape.get("size")
        if size != [height, width]:
            raise BadShape(
                f"{box.ident}: its run-length mask's size [height, width] is {size}, but the"
                f" image is [{height}, {width}] as displayed; give the mask at the displayed"
                " image's size"
            )
        counts = shape["counts"]
        runs = rle_counts(counts) if isinstance(counts, str) else counts
        return np.ascontiguousarray(rle_mask(runs, height, width))
    if isinstance(shape, list):
        im = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(im)
        for polygon in shape:
            points = [(polygon[k], polygon[k + 1]) for k in range(0, len(polygon), 2)]
            draw.polygon(points, fill=1)
        return np.asarray(im, np.uint8)
    mask = np.zeros((height, width), np.uint8)
    x0, x1 = (min(max(math.ceil(v - 0.5), 0), width) for v in (box.x0, box.x1))
    y0, y1 = (min(max(math.ceil(v - 0.5), 0), height) for v in (box.y0, box.y1))
    mask[y0:y1, x0:x1] = 1
    return mask


def stored(
    boxes: Sequence[PixelBox], kept: Sequence[bool], height: int, width: int, opts: pixels.Resize
) -> tuple[bytes, ...]:
    """The PNG of each kept object's mask, moved into the stored image (``pixels.resize``
    of a ``height`` x ``width`` displayed image); every box's segmentation is checked against
    the image, kept or not (``BadShape``)."""
    import numpy as np

    masks = [drawn(box, height, width) for box in boxes]
    out = []
    for mask, keep in zip(masks, kept, strict=True):
        if not keep:
            continue
        # nearest neighbour; pad's border (255, "ignore" for a class mask) is outside: 0
        moved = pixels.resize(mask[..., None], opts, labels=True)[..., 0]
        buffer = io.BytesIO()
        Image.fromarray((moved == 1).astype(np.uint8), "L").save(buffer, "PNG")
        out.append(buffer.getvalue())
    return tuple(out)
