"""``imgrec convert``: other tools' datasets as the images of a pack.

Each reader lists a dataset file's records as ``Item``s (with a ``Ref`` to where each image
lies, its label, and a file name) and reads one record's image back, as encoded bytes or as
pixels. Everything else (plan, executors, shards, manifest, resume) is ``pack``'s.

- ``recordio``: MXNet ``.rec`` files (with their ``.idx`` or without).
- ``lmdb``: Caffe LMDB folders of ``Datum`` records (the ``lmdb`` package: imgrec[lmdb]).
- ``tfrecord``: other tools' TFRecord files: the inception/slim keys, TFDS image datasets,
  or keys named with ``--keys``; the TF Object Detection API's objects kept (``objects``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...core import storage
from ...core.errors import InputError
from ...core.storage import Location
from ...format.framing import HEADER_SIZE, is_record_start
from ...format.options import PackOptions
from ..discover import Ref, Walk
from . import caffe, recordio, tfrecords

if TYPE_CHECKING:
    import numpy as np

KINDS = ("recordio", "lmdb", "tfrecord")


def detect(src: Location) -> str:
    """The kind of dataset ``src`` is, from its files."""
    if isinstance(src, Path) and src.is_dir():
        return _detect_folder(src)
    name = storage.name_of(src) if not isinstance(src, Path) else src.name
    if name.endswith(".rec"):
        return "recordio"
    if name == "data.mdb":
        return "lmdb"
    if ".tfrecord" in name or name.endswith(".tfrec") or any(c in str(src) for c in "*?["):
        return "tfrecord"
    return _detect_content(src) or _unknown(src)


def _detect_folder(src: Path) -> str:
    if (src / "data.mdb").is_file():
        return "lmdb"
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    names = [p.name for p in files]
    if any(n.endswith(".rec") for n in names):
        return "recordio"
    if any(".tfrecord" in n or n.endswith(".tfrec") for n in names):
        return "tfrecord"
    # Files named by no extension (the inception scripts' train-00000-of-01024): by content.
    if any(_detect_content(p) == "tfrecord" for p in files):
        return "tfrecord"
    return _unknown(src)


def _detect_content(src: Location) -> str | None:
    try:
        with storage.open_read(src) as f:
            head = f.read(HEADER_SIZE)
    except OSError as e:
        raise InputError(f"cannot read it ({e.strerror or e})", str(src)) from None
    if head[:4] == recordio.MAGIC_BYTES:
        return "recordio"
    if is_record_start(head):
        return "tfrecord"  # a TFRecord length field with its CRC: as TF's own files start
    return None


def _unknown(src: Location) -> str:
    raise InputError(
        "cannot tell what kind of dataset this is; name it with --from recordio, lmdb or tfrecord",
        str(src),
    )


def listing(src: Location, opts: PackOptions) -> Walk:
    """The images of the dataset ``src``, in its own order, as a Walk."""
    kind = opts.source_format
    if kind == "recordio":
        return recordio.listing(src, opts)
    if kind == "lmdb":
        return caffe.listing(src, opts)
    if kind == "tfrecord":
        return tfrecords.listing(src, opts)
    raise InputError(f"unknown source format {kind!r}; use one of {', '.join(KINDS)}")


def read_ref(container: Location, ref: Ref) -> bytes | np.ndarray:
    """One record's image: encoded bytes, or pixels (HWC, RGB)."""
    if ref.kind == "recordio":
        return recordio.read(container, ref)
    if ref.kind == "lmdb":
        return caffe.read(container, ref)
    return tfrecords.read(container, ref)
