"""Random access to imgrec datasets without TensorFlow: ``RecordSource``, a sequence of
examples as NumPy arrays, for PyTorch's map-style ``Dataset``, Grain's
``RandomAccessDataSource`` or any loop of your own.

One example is one positioned read through the shard's index file (``os.pread`` for local
files, a ranged read for URLs), both CRCs checked, then a decode with Pillow by the rules
``imgrec.dataset`` follows: the record's orientation applied, its stored channels (or the
``channels`` asked for, converted as the pack's pixel rules convert), and integers scaled to
[0, 1] as ``tf.image.convert_image_dtype`` scales them (x * float32(1 / 255), 1 / 65535,
1 / (2**31 - 1); floats kept). Nothing here imports TensorFlow.

Safe to share between threads (positioned reads share no file offset) and across ``fork``
(each process opens its own files on first use).
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import s3, storage
from ..core.errors import ImgrecError, InputError, ShardError
from ..core.storage import Location
from ..format import schema
from ..format.framing import FOOTER_SIZE, HEADER_SIZE, masked_crc, read_index
from ..format.layout import index_for
from ..images.modes import MODES, natural_pixels
from ..images.pillow import open_header, sixteen_bit_colour
from ..images.pixels import orient, shape_channels
from .paths import Known, Paths, describe, entries, resolve

# tf.image.convert_image_dtype's scale for each stored integer dtype: 1 / its maximum
_SCALE = {name: np.float32(1 / np.iinfo(name).max) for name in ("uint8", "uint16", "int32")}
DTYPES = ("float32", None)  # scaled to [0, 1], or as stored


@dataclass(frozen=True)
class _Shard:
    where: Location
    offsets: np.ndarray  # int64, one per record
    sizes: np.ndarray  # int64, the framed record's size


class RecordSource:
    """The records of imgrec datasets (folders, shard files or globs, local or ``s3://`` /
    ``gs://``), in order, with ``len`` and indexing.

    ``source[i]`` is a dict: ``image`` (HWC, float32 in [0, 1], or the stored dtype with
    ``dtype=None``), ``label`` (int64, -1 for none), ``filename`` (str), and for a dataset
    packed with annotations the keys ``imgrec.dataset`` gives (``bounding_boxes``,
    ``objects``, ``keypoints``, ``object_masks``, ``segmentation_mask``, ``fields``), as
    NumPy arrays. ``split`` reads one split of a dataset packed with ``--split``.
    """

    def __init__(
        self,
        paths: Paths,
        *,
        split: str | None = None,
        dtype: str | None = "float32",
        channels: int | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ImgrecError(f"dtype={dtype!r}: use 'float32' (scaled to [0, 1]) or None")
        if channels not in (None, 1, 3, 4):
            raise ImgrecError(f"channels={channels!r}: use 1, 3 or 4 (or None: as stored)")
        self.dtype, self.channels = dtype, channels
        files = resolve(paths, split)
        listed = entries(files)
        # What the manifests say of the annotations (None: other tools' shards)
        self._known = describe(files)
        self._shards = [
            _open_index(f, None if listed is None else listed[k][1].records)
            for k, f in enumerate(files)
        ]
        counts = np.array([len(s.offsets) for s in self._shards], np.int64)
        self._ends = np.cumsum(counts)
        self._files: dict[tuple[int, int], int] = {}  # (pid, shard) -> descriptor
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, i: int) -> dict[str, Any]:
        where, j, offset = self.locate(i)
        data = self.read(i)
        try:
            return self.example(data)
        except (schema.SchemaError, OSError, ValueError, SyntaxError) as e:
            # SyntaxError: what Pillow raises for some damaged files
            raise ShardError(f"cannot decode it: {e}", str(where), j, offset) from None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to spawned workers) without open files or the lock."""
        state = self.__dict__.copy()
        state["_files"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _find(self, i: int) -> tuple[int, int]:
        """(shard, record in it) of record ``i``."""
        n = len(self)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"record indices are integers, not {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        i = int(i) % n
        k = int(np.searchsorted(self._ends, i, side="right"))
        return k, i - (int(self._ends[k - 1]) if k else 0)

    def locate(self, i: int) -> tuple[Location, int, int]:
        """(shard, record number in it, byte offset) of record ``i``."""
        k, j = self._find(i)
        return self._shards[k].where, j, int(self._shards[k].offsets[j])

    def read(self, i: int) -> bytes:
        """Record ``i``'s serialized ``tf.train.Example``, both CRCs checked."""
        k, j = self._find(i)
        shard = self._shards[k]
        offset, size = int(shard.offsets[j]), int(shard.sizes[j])
        framed = self._pread(k, size, offset)
        return _unframe(framed, size, shard.where, j, offset)

    def example(self, data: bytes) -> dict[str, Any]:
        """One serialized record as the dict ``source[i]`` gives."""
        record = schema.parse(data)
        image = decode_image(record, self.channels)
        if self.dtype == "float32":
            image = to_float(image)
        out: dict[str, Any] = {
            "image": image,
            "label": np.int64(record.label),
            "filename": record.filename,
        }
        out.update(annotations_of(record, self._known))
        return out

    def _pread(self, k: int, size: int, offset: int) -> bytes:
        where = self._shards[k].where
        if isinstance(where, str) and where.startswith("s3://"):  # one ranged GET
            return s3.read_range(where, offset, size, storage.options_for(where))
        if not isinstance(where, Path):
            try:
                with storage.open_read(where) as f:
                    f.seek(offset)
                    return bytes(f.read(size))
            except OSError as e:
                raise InputError(f"cannot read it ({e})", where) from None
        key = (os.getpid(), k)
        fd = self._files.get(key)
        if fd is None:
            with self._lock:
                fd = self._files.get(key)
                if fd is None:
                    try:
                        fd = self._files[key] = os.open(where, os.O_RDONLY)
                    except OSError as e:
                        raise InputError(f"cannot read it ({e.strerror})", str(where)) from None
        return os.pread(fd, size, offset)

    def close(self) -> None:
        """Close this process's open shard files (reopened on the next read)."""
        with self._lock:
            for key in [key for key in self._files if key[0] == os.getpid()]:
                os.close(self._files.pop(key))


def _open_index(where: Location, records: int | None) -> _Shard:
    index = index_for(where)
    if storage.size(index) is None:
        raise InputError(
            f"has no index file ({storage.name_of(index)}), which random access reads:"
            f" run imgrec index {where}",
            str(where),
        )
    pairs = np.array(read_index(index), np.int64).reshape(-1, 2)
    offsets, sizes = pairs[:, 0].copy(), pairs[:, 1].copy()
    size = storage.size(where) or 0
    contiguous = len(offsets) == 0 or (
        offsets[0] == 0
        and bool(np.all(offsets[1:] == offsets[:-1] + sizes[:-1]))
        and int(offsets[-1] + sizes[-1]) == size
        and bool(np.all(sizes >= HEADER_SIZE + FOOTER_SIZE))
    )
    if not contiguous or (len(offsets) == 0 and size):
        raise InputError(
            f"its index file {storage.name_of(index)} does not match it (another shard's, or"
            f" out of date): run imgrec index {where}",
            str(where),
        )
    if records is not None and records != len(offsets):
        raise InputError(
            f"the manifest lists {records} records and its index {len(offsets)}: run imgrec"
            f" verify {storage.parent_of(where)}",
            str(where),
        )
    return _Shard(where, offsets, sizes)


def _unframe(framed: bytes, size: int, where: Location, index: int, offset: int) -> bytes:
    """The data of one framed record, both CRCs checked."""
    if len(framed) < size:
        raise ShardError("the shard ends inside this record (cut short)", str(where), index, offset)
    header, data = framed[:HEADER_SIZE], framed[HEADER_SIZE:-FOOTER_SIZE]
    (length,) = struct.unpack("<Q", header[:8])
    if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
        raise ShardError("length CRC mismatch", str(where), index, offset)
    if length != len(data):
        raise ShardError(
            f"record length {length} is not what the index says ({len(data)}): run imgrec index",
            str(where),
            index,
            offset,
        )
    if struct.unpack("<I", framed[-FOOTER_SIZE:])[0] != masked_crc(data):
        raise ShardError("data CRC mismatch (corrupt data)", str(where), index, offset)
    return data


def decode_image(record: schema.Record, channels: int | None = None) -> np.ndarray:
    """The record's pixels as stored (HWC, its dtype), oriented, in its channels or
    ``channels``: the pixels pack would store raw from the same bytes."""
    want = channels or record.channels
    if record.format == "raw":
        shape = (record.height, record.width, record.channels)
        arr = np.frombuffer(record.data, np.dtype(record.dtype)).reshape(shape)
        if want == record.channels:
            return arr.copy()
        return shape_channels(arr, 1 if record.channels in (1, 2) else 3, want)
    # Without Pillow's decompression-bomb check (a process-wide setting): the pack checked
    # --max-pixels, and the header must give the record's own size.
    im = open_header(io.BytesIO(record.data))
    if im is None:
        raise ValueError(f"image/format is {record.format}, but Pillow does not recognise it")
    shown = (im.height, im.width) if record.orientation < 5 else (im.width, im.height)
    if shown != (record.height, record.width):
        raise ValueError(
            f"the image is {im.width}x{im.height}, the record says"
            f" {record.width}x{record.height} (orientation {record.orientation})"
        )
    with im:
        tiles = list(getattr(im, "tile", []))
        im.load()
        mode = MODES.get(im.mode)
        if mode is None:
            raise ValueError(f"Pillow mode {im.mode!r} is not a mode imgrec stores")
        natural = None
        if im.mode in ("RGB", "RGBA") and record.dtype == "uint16":
            natural = sixteen_bit_colour(record.data, tiles)
        if natural is None:
            natural = natural_pixels(im)
    arr = orient(natural, record.orientation)
    return shape_channels(arr, mode.base, want)


def to_float(image: np.ndarray) -> np.ndarray:
    """``tf.image.convert_image_dtype(image, tf.float32)``: integers times float32(1 / max),
    floats as they are."""
    scale = _SCALE.get(image.dtype.name)
    if scale is None:
        return image.astype(np.float32, copy=False)
    return image.astype(np.float32) * scale


def annotations_of(record: schema.Record, known: Known | None) -> dict[str, Any]:
    """The annotation keys of ``imgrec.dataset``'s dict, unbatched, as NumPy arrays. A
    dataset packed with annotations (its manifests' ``columns`` not None) gives every record
    the object keys, empty where it has none; other shards what each record holds."""
    out: dict[str, Any] = {}
    columns = known.columns if known is not None else None
    o = record.objects
    if o is None and columns is not None:
        o = schema.Objects()
    if o is not None:
        out["bounding_boxes"] = {
            "boxes": np.array([o.ymin, o.xmin, o.ymax, o.xmax], np.float32).T.reshape(-1, 4),
            "labels": np.array(o.label, np.int32),
        }
        out["objects"] = {
            "area": np.array(o.area, np.float32),
            "is_crowd": np.array(o.crowd, np.int32),
            "difficult": np.array(o.difficult, np.int32),
            "truncated": np.array(o.truncated, np.int32),
        }
        named = known.keypoints if known is not None else None
        if o.keypointed or named:
            n = len(o.label)
            k = max(map(len, named.values())) if named else len(o.keypoint_x) // max(n, 1)
            y = np.array(o.keypoint_y, np.float32).reshape(n, k)
            x = np.array(o.keypoint_x, np.float32).reshape(n, k)
            out["keypoints"] = {
                "points": np.stack([y, x], axis=-1),
                "visibility": np.array(o.keypoint_visibility, np.int32).reshape(n, k),
            }
        if o.masks is not None or known is not None and known.instance_masks:
            out["object_masks"] = _masks(o.masks or (), record)
    if record.mask is not None:
        out["segmentation_mask"] = _png(record.mask)[..., :1]
    if o is not None or record.fields:
        types = columns or {}
        out["fields"] = {
            name: _field(types.get(name, kind), value) for name, kind, value in record.fields
        }
    return out


def _png(data: bytes) -> np.ndarray:
    im = open_header(io.BytesIO(data))  # a mask, at its image's size: checked as the image
    if im is None:
        raise ValueError("a mask is not a PNG Pillow recognises")
    with im:
        arr = np.asarray(im)
    return arr[..., None] if arr.ndim == 2 else arr


def _masks(masks: Sequence[bytes], record: schema.Record) -> np.ndarray:
    if not masks:
        return np.zeros((0, record.height, record.width), np.uint8)
    return np.stack([_png(m)[..., 0] for m in masks])


def _field(kind: str, value: Any) -> Any:
    """A field's value as ``imgrec.dataset`` types it: by its column's type (a record alone
    cannot tell one number from a list of one)."""
    if kind == "str":
        return value
    if kind == "int":
        return np.int64(value[0]) if len(value) == 1 else np.array(value, np.int64)
    if kind == "float":
        return np.float32(value[0]) if len(value) == 1 else np.array(value, np.float32)
    return np.array(value, np.float32)
