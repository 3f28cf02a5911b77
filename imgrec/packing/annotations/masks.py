"""Semantic masks (``--masks DIR``): one PNG of class indices per image, at the image's path
relative to SRC with ``.png`` for its extension (``DIR/a/b.png`` for ``SRC/a/b.jpg``), as
DeepLab's datasets and VOC's ``SegmentationClass`` lay them out. Each pixel is its class
index; 255 means "ignore" (VOC's object borders). A palette PNG's indices are the classes,
not its colours. The mask is read, checked and moved with the image when the image is
packed (``placing``); here, each image is only paired with its file.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ...core.errors import InputError
from . import Annotated, Source

IGNORE = 255  # the class index of pixels no class is given to (and of pad's border)


def read(folder: Path) -> Source:
    """The masks under ``folder``, by image path. An image without its mask file is
    skipped with a reason naming the file looked for."""
    if not folder.is_dir():
        raise InputError("--masks: not a folder (give the folder of mask PNGs)", str(folder))

    def lookup(rel: str) -> Annotated:
        path = folder / PurePosixPath(rel).with_suffix(".png")
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not path.is_file():
            problem = f"{path}: no mask for this image (every image needs one with --masks)"
            return Annotated(problem=problem)
        return Annotated(mask=(str(path), st.st_size, st.st_mtime_ns))

    return Source("masks", str(folder), {}, lookup=lookup)
