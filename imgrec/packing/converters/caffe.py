"""Caffe LMDB: a folder with ``data.mdb``, whose values are ``Datum`` protobufs.

``Datum``: channels (1), height (2), width (3), data (4), label (5), float_data (6),
encoded (7). An encoded datum's ``data`` is the image file's bytes, kept as they are. A raw
datum's ``data`` is uint8 pixels, channel-planar (C, H, W) and, for colour, in BGR order
(Caffe's OpenCV convention; BGRA with alpha): it becomes HWC RGB (RGBA). ``float_data``
becomes float32 pixels the same way. Keys are ``convert_imageset``'s ``<8-digit
index>_<path>``: the path is the record's file name. Needs the ``lmdb`` package (pip
install "imgrec[lmdb]").
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ...core.errors import DependencyError, InputError
from ...core.storage import Location
from ...format.options import PackOptions
from ...images import loading
from ..discover import Ref, Walk
from .common import Found, walk_of

if TYPE_CHECKING:
    import numpy as np

LMDB_HINT = 'Caffe LMDB datasets need the lmdb package: pip install "imgrec[lmdb]"'
_KEY = re.compile(r"^\d{8}_(.+)$", re.S)


def _datum_class() -> Any:
    f = descriptor_pb2.FileDescriptorProto(name="imgrec/caffe_datum.proto", package="imgrec_caffe")
    fd = descriptor_pb2.FieldDescriptorProto
    m = f.message_type.add(name="Datum")
    for name, number, kind, label in (
        ("channels", 1, fd.TYPE_INT32, fd.LABEL_OPTIONAL),
        ("height", 2, fd.TYPE_INT32, fd.LABEL_OPTIONAL),
        ("width", 3, fd.TYPE_INT32, fd.LABEL_OPTIONAL),
        ("data", 4, fd.TYPE_BYTES, fd.LABEL_OPTIONAL),
        ("label", 5, fd.TYPE_INT32, fd.LABEL_OPTIONAL),
        ("float_data", 6, fd.TYPE_FLOAT, fd.LABEL_REPEATED),
        ("encoded", 7, fd.TYPE_BOOL, fd.LABEL_OPTIONAL),
    ):
        m.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("imgrec_caffe.Datum"))


Datum = _datum_class()


def _open(folder: Path) -> Any:
    try:
        import lmdb
    except ImportError:
        raise DependencyError(LMDB_HINT) from None
    try:
        return lmdb.open(str(folder), readonly=True, lock=False, readahead=False,
                         subdir=folder.is_dir(), max_readers=512)  # fmt: skip
    except lmdb.Error as e:
        raise InputError(f"not a readable LMDB ({e})", str(folder)) from None


def _folder(src: Location) -> Path:
    if not isinstance(src, Path):
        raise InputError("LMDB datasets are read from a local folder", str(src))
    return src.parent if src.name == "data.mdb" else src


def listing(src: Location, opts: PackOptions) -> Walk:
    folder = _folder(src)
    found = []
    env = _open(folder)  # closed before any worker starts
    with contextlib.closing(env), env.begin(buffers=False) as txn:
        for key, value in txn.cursor():
            datum = _parse(value)
            name = key.decode("utf-8", "surrogateescape")
            m = _KEY.match(name)
            label = datum.label if datum is not None and datum.HasField("label") else None
            found.append(Found(Ref("lmdb", key=key), m.group(1) if m else name, label, "",
                               len(value)))  # fmt: skip
    return walk_of(folder, found, opts, 0)


def _parse(value: bytes) -> Any:
    datum = Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError:
        return None
    return datum


def read(container: Location, ref: Ref) -> bytes | np.ndarray:
    # Opened per read: an environment must not cross a fork into a worker, and the lmdb
    # package refuses a second one for the same folder in a process.
    import numpy as np

    env = _open(_folder(container))
    with contextlib.closing(env), env.begin(buffers=False) as txn:
        value = txn.get(ref.key)
    if value is None:
        raise loading.SkipImage("missing", "the LMDB has no such key any more")
    datum = _parse(value)
    if datum is None:
        raise loading.SkipImage("corrupt", "the value is not a Caffe Datum")
    if datum.encoded:
        return bytes(datum.data)
    c, h, w = datum.channels, datum.height, datum.width
    if datum.data:
        pixels = np.frombuffer(datum.data, np.uint8)
    else:
        pixels = np.asarray(datum.float_data, np.float32)
    if min(c, h, w) <= 0 or pixels.size != c * h * w:
        raise loading.SkipImage(
            "corrupt", f"{pixels.size} values for a {c}x{h}x{w} datum (channels x height x width)"
        )
    hwc = pixels.reshape(c, h, w).transpose(1, 2, 0)
    if c in (3, 4):  # OpenCV's BGR and BGRA -> RGB and RGBA (alpha stays last)
        hwc = hwc[..., [2, 1, 0, 3][:c]]
    return np.ascontiguousarray(hwc)
