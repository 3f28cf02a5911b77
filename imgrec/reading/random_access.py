"""Random access to imgrec datasets without TensorFlow: ``RecordSource``, a sequence of
examples as NumPy arrays, for PyTorch's map-style ``Dataset``, Grain's
``RandomAccessDataSource`` or any loop of your own.

One example is one positioned read through the shard's index file (``os.pread`` for local
files, one ranged GET on ``s3://`` and ``gs://``), both CRCs checked, then a decode with
Pillow (JPEGs with simplejpeg, to the same pixels) by the rules ``imgrec.dataset`` follows
(``numpy_decode``, ``numpy_resize``): the record's orientation applied, its stored channels
(or the ``channels`` asked for), the ``resize`` (bilinear, with the JPEG DCT scale), the
``crop`` and its flip, and integers scaled to [0, 1] as ``tf.image.convert_image_dtype``
scales them. Nothing here imports TensorFlow.

Safe to share between threads (positioned reads share no file offset) and across ``fork``
(each process opens its own files on first use).
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core import gcs, s3, storage
from ..core.errors import ImgrecError, InputError, ShardError
from ..core.storage import Location
from ..format import schema
from ..format.framing import FOOTER_SIZE, HEADER_SIZE, frame_in, read_index
from ..format.layout import index_for
from .crops import CROPS, flipped, window_of
from .numpy_decode import annotations_of, decode_image
from .numpy_resize import resize_rounded, to_float
from .paths import Paths, describe, entries, resolve

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
    NumPy arrays. ``split`` reads one split of a dataset packed with ``--split``;
    ``channels`` (1, 3 or 4), ``resize`` ((height, width)) and ``crop`` are
    ``imgrec.dataset``'s (``crops``: ``"center"``, or ``"random"`` with its left-right
    flip, boxes, masks and keypoints moved with the pixels).

    A random crop is drawn from ``(seed, epoch, i)``: the same for the same record in the
    same epoch, in any process and order, and new each epoch. ``set_epoch`` sets the epoch
    ``source[i]`` reads (as ``RecordSampler.set_epoch``); ``get(i, epoch)`` names it.
    """

    def __init__(
        self,
        paths: Paths,
        *,
        split: str | None = None,
        dtype: str | None = "float32",
        channels: int | None = None,
        resize: tuple[int, int] | None = None,
        crop: str | None = None,
        seed: int = 0,
    ) -> None:
        if dtype not in DTYPES:
            raise ImgrecError(f"dtype={dtype!r}: use 'float32' (scaled to [0, 1]) or None")
        if channels not in (None, 1, 3, 4):
            raise ImgrecError(f"channels={channels!r}: use 1, 3 or 4 (or None: as stored)")
        if resize is not None and not (
            isinstance(resize, tuple | list)
            and len(resize) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in resize)
        ):
            raise ImgrecError(f"resize={resize!r}: give (height, width), two whole numbers >= 1")
        if crop is not None and crop not in CROPS:
            raise ImgrecError(f"crop={crop!r}: use one of {', '.join(CROPS)} (or None)")
        if crop is not None and resize is None:
            raise ImgrecError(f"crop={crop!r} needs resize=(height, width): the size to crop to")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ImgrecError(f"seed={seed!r}: give a whole number >= 0")
        self.dtype, self.channels, self.crop, self.seed = dtype, channels, crop, seed
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.epoch = 0
        files = resolve(paths, split)
        listed = entries(files)
        # What the manifests say of the annotations (None: other tools' shards)
        self._known = describe(files)
        # A dataset of several dtypes is made float before the resize, as imgrec.dataset
        # makes it (no one integer type holds them all); one dtype is resized as stored.
        mixed = self._known is not None and len(self._known.dtypes) > 1
        self._float_first = dtype == "float32" and mixed
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
        return self.get(i)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose random crops ``source[i]`` draws (0 until set). DataLoader workers
        copy the source when an epoch's iteration starts, unless ``persistent_workers``:
        then index with ``get`` (e.g. through a ``Dataset`` of your own)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ImgrecError(f"epoch={epoch!r}: give a whole number >= 0")
        self.epoch = epoch

    def get(self, i: int, epoch: int | None = None) -> dict[str, Any]:
        """``source[i]``, its random crop drawn for ``epoch`` (default: ``set_epoch``'s)."""
        data = self.read(i)
        key = None
        if self.crop == "random":
            key = (self.seed, self.epoch if epoch is None else epoch, int(i) % len(self))
        try:
            return self.example(data, key)
        except (schema.SchemaError, OSError, ValueError, SyntaxError) as e:
            # SyntaxError: what Pillow raises for some damaged files
            where, j, offset = self.locate(i)
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
        found = frame_in(self._pread(k, size, offset), j, offset)
        if found.problem is not None or found.data is None:
            raise ShardError(found.problem or "unreadable", str(shard.where), j, offset)
        if found.size != size:
            message = f"its index says {size} bytes, the record is {found.size}: run imgrec index"
            raise ShardError(message, str(shard.where), j, offset)
        return found.data

    def example(self, data: bytes, key: tuple[int, ...] | None = None) -> dict[str, Any]:
        """One serialized record as the dict ``source[i]`` gives; ``key`` (seed, epoch,
        index) draws its random crop."""
        record = schema.parse(data)
        window, flip = None, False
        if self.crop is not None and self.resize is not None:  # (hw) -> its crop window
            window = functools.partial(window_of, self.crop, size=self.resize, key=key)
            flip = key is not None and flipped(key)
        scaled = self.dtype == "float32"  # then every path below makes a new array
        image = decode_image(record, self.channels, self.resize, window, fresh=not scaled)
        if self._float_first:
            image = to_float(image)
        if self.resize is not None:  # (flipped after the resize, as imgrec.dataset flips)
            image = resize_rounded(image, self.resize, flip=flip, scaled=scaled)
        elif scaled:
            image = to_float(image)
        out: dict[str, Any] = {
            "image": image,
            "label": np.int64(record.label),
            "filename": record.filename,
        }
        out.update(annotations_of(record, self._known, self.resize, window, flip))
        return out

    def _pread(self, k: int, size: int, offset: int) -> bytes:
        where = self._shards[k].where
        if isinstance(where, str) and where.startswith("s3://"):  # one ranged GET
            return s3.read_range(where, offset, size, storage.options_for(where))
        if isinstance(where, str) and where.startswith("gs://"):  # one ranged GET
            return gcs.read_range(where, offset, size, storage.options_for(where))
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
