"""Pack images already in Spark: ``imgrec.spark.write(df, OUT)``.

``df`` is a pyspark DataFrame with a row per image: by default the columns of
``spark.read.format("binaryFile").load(SRC)`` (``path``, ``content``, and
``modificationTime``, which resumed runs compare). Each row's path relative to ``root``
(the rows' common folder, unless given) plays the part of a file's path under SRC: it is
the record's ``image/filename``, its first folder is its class (or ``label_col`` gives
it), and it decides the image's split. The shards, index files, manifest, splits and skip
reasons are those ``pack`` writes for a folder of the same files, and the same rows give the
same bytes whatever the DataFrame's partitioning.

    from imgrec.spark import write

    df = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(SRC)
    write(df, "s3://bucket/shards", PackOptions(split=(("train", 0.9), ("val", 0.1))))

The work runs on the DataFrame's session, which is left running. OUT must be a place every
executor and the driver see alike (an object store, or a shared filesystem).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .core.errors import InputError
from .core.progress import Progress
from .format.manifest import Manifest
from .format.options import PackOptions, check
from .packing.driver import pack_with
from .packing.executors.frame import FrameExecutor


def write(
    df: Any,
    out: str | Path,
    options: PackOptions | None = None,
    *,
    path_col: str = "path",
    content_col: str = "content",
    label_col: str | None = None,
    time_col: str | None = "modificationTime",
    root: str | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> Manifest:
    """Pack the images in ``df``'s rows into shards in ``out``; returns the manifest.

    ``label_col``: a column whose values (as text) are the classes, numbered in sorted
    order; None: each path's first folder under ``root``, as ``pack`` labels a folder.
    ``time_col``: the files' modification times (a missing column counts as none).
    ``options``: as for ``pack`` (``runner``, ``workers`` and the from-list, annotation
    and mask options do not apply). ``resume`` continues an interrupted run into ``out``."""
    opts = replace(options or PackOptions(), runner="spark")
    for name in ("from_list", "annotations", "masks"):
        if getattr(opts, name) is not None:
            raise InputError(f"imgrec.spark.write takes images from the DataFrame: drop {name}")
    executor = FrameExecutor(df, path_col, content_col, label_col, time_col, root)
    src = executor.source()
    check(opts, src, out)
    return pack_with(executor, src, out, opts, progress, resume)
