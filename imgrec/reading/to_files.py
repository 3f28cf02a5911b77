"""``imgrec decode``: a loop over the checked read of ``tfdata`` (``dataset`` with a tally of
what it found) that writes files and/or statistics."""

from __future__ import annotations

import enum
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..core.deps import import_tf
from ..core.errors import ImgrecError
from ..core.progress import Progress
from ..core.storage import Location
from ..format.record_check import Problem
from .paths import describe, entries, resolve
from .sources import Tally
from .tfdata import host_dataset, on_device, pick_device


class ChannelStats:
    """Running per-channel mean, std, min and max, accumulated in float64.

    The per-image reductions run as TensorFlow ops (multi-threaded C++); only C numbers per
    image reach Python.
    """

    def __init__(self, channels: int) -> None:
        self.images = 0
        self.n = 0
        self.sum = np.zeros(channels)
        self.sumsq = np.zeros(channels)
        self.min = np.full(channels, np.inf)
        self.max = np.full(channels, -np.inf)

    def add(self, tf: Any, image: Any) -> None:
        x = tf.cast(image, tf.float64)
        self.images += 1
        self.n += int(x.shape[0]) * int(x.shape[1])
        self.sum += tf.reduce_sum(x, [0, 1]).numpy()
        self.sumsq += tf.reduce_sum(x * x, [0, 1]).numpy()
        self.min = np.minimum(self.min, tf.reduce_min(x, [0, 1]).numpy())
        self.max = np.maximum(self.max, tf.reduce_max(x, [0, 1]).numpy())

    def to_dict(self) -> dict[str, Any]:
        mean = self.sum / self.n
        std = np.sqrt(np.maximum(self.sumsq / self.n - mean * mean, 0))
        return {
            "images": self.images,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
        }


NAME_MAX = 255  # bytes in one file name on common file systems (ext4, XFS, APFS, NTFS)


class OutputNames:
    """Where each record's file goes: OUT/<its filename with the suffix replaced>.

    Never outside OUT (names that are empty, absolute or climb out with '..' become
    ``record-<index>``), never over another record's file, never where a record's file is
    a folder or a folder is a file (``c/d.jpg`` beside ``c/d.npy/x.jpg``), and never a name
    too long for the file system (cut, with a hash of the whole name to keep it unique).
    """

    def __init__(self, out: Path, suffix: str) -> None:
        self.out, self.suffix = out, suffix
        self.files: set[Path] = set()
        self.folders: set[Path] = set()

    def path_for(self, filename: str, index: int) -> Path:
        parts = [p for p in PurePosixPath(filename.replace("\\", "/")).parts if p not in ("", ".")]
        unsafe = not parts or filename.startswith("/") or ".." in parts or "\0" in filename
        if unsafe:
            parts = [f"record-{index:08d}"]
        stem = PurePosixPath(parts[-1]).stem if "." in parts[-1][1:] else parts[-1]
        folders = [_fit(p) for p in parts[:-1]]
        candidates = [
            self.out.joinpath(*folders, _fit(stem, self.suffix)),
            self.out.joinpath(*folders, _fit(f"{stem}-{index:08d}", self.suffix)),
            self.out / f"record-{index:08d}{self.suffix}",
        ]
        path = next((c for c in candidates if self._free(c)), None)
        n = 0
        while path is None:  # ends: every name below is new
            n += 1
            path = self.out / f"record-{index:08d}-{n}{self.suffix}"
            path = path if self._free(path) else None
        self.files.add(path)
        self.folders.update(p for p in path.parents if p != self.out and self.out in p.parents)
        return path

    def _free(self, path: Path) -> bool:
        parents = [p for p in path.parents if p != self.out and self.out in p.parents]
        return not (
            path in self.files
            or path in self.folders
            or path.is_dir()
            or any(p in self.files or p.is_file() for p in parents)
        )


def _fit(name: str, suffix: str = "") -> str:
    """``name + suffix``, its name cut to fit NAME_MAX bytes, with a hash of the whole."""
    whole = (name + suffix).encode("utf-8", "surrogateescape")
    if len(whole) <= NAME_MAX:
        return name + suffix
    tag = "~" + hashlib.sha256(whole).hexdigest()[:12]
    room = NAME_MAX - len((tag + suffix).encode("utf-8", "surrogateescape"))
    cut = name.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return cut + tag + suffix


@dataclass(frozen=True)
class DecodeResult:
    records: int
    written: int
    out: str | None
    device: str
    dtype: str
    stats: dict[str, dict[str, Any]] | None  # per channel count: mean, std, min, max
    problems: list[Problem]  # records left out

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "written": self.written,
            "out": self.out,
            "device": self.device,
            "dtype": self.dtype,
            "stats": self.stats,
            "problems": [str(p) for p in self.problems],
        }


def decode(
    paths: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    to: str = "npy",
    dtype: str = "float32",
    device: str = "auto",
    limit: int | None = None,
    split: str | None = None,
    stats: bool = False,
    channels: int | None = None,
    progress: Progress | None = None,
) -> DecodeResult:
    """Decode records to float tensors in [0, 1] through ``dataset``: write one file per
    record under ``out`` (``.npy``, or ``.png`` with ``to="png"``), and/or gather
    per-channel statistics. Damaged records are left out and listed in ``problems``."""
    tf = import_tf()
    out = Path(out) if out is not None else None
    files = resolve(paths, split)
    target = pick_device(device)
    known = describe(files)
    problems: list[Problem] = []
    tally = Tally()
    # The paths, not ``files``: an empty split resolves to no files, which as paths would
    # be "no shards given".
    host = host_dataset(paths, split=split, dtype=dtype, channels=channels, limit=limit,
                        on_problem=problems.append, tally=tally)  # fmt: skip
    ds = on_device(host, dtype=dtype, device=device, labels=True, with_filenames=True)
    total = known.records if known is not None else None
    if limit is not None:
        total = min(limit, total) if total is not None else limit
    gathered: dict[int, ChannelStats] = {}
    depth = _Depth.EIGHT if known is not None and "uint16" not in known.dtypes else _Depth.EACH
    depth = _Depth.SIXTEEN if known is not None and known.dtypes == {"uint16"} else depth
    writer = _Writer(tf, out, to, depth) if out is not None else None
    count = 0
    for count, (image, name, extra) in enumerate(_images(tf, ds), 1):
        if progress:
            progress("decode", count, total or 0)
        if stats:
            c = int(image.shape[-1])
            gathered.setdefault(c, ChannelStats(c)).add(tf, image)
        if writer is not None:
            writer.write(image, name, count - 1, extra)
    problems += _unaccounted(files, tally, count, limit)
    return DecodeResult(
        records=count,
        written=writer.written if writer is not None else 0,
        out=str(out) if out is not None else None,
        device=target,
        dtype=dtype,
        stats={str(c): s.to_dict() for c, s in sorted(gathered.items())} or None,
        problems=problems,
    )


def _unaccounted(
    files: Sequence[Location], tally: Tally, decoded: int, limit: int | None
) -> list[Problem]:
    """Records the read lost without a problem of their own: passed imgrec's checks yet
    dropped by TensorFlow (each one seen), and, when every shard was read to its end,
    shards holding another number of records than their manifests list."""
    lost: list[Problem] = []
    if tally.passed > decoded:
        where = ", ".join(map(str, files))
        lost.append(Problem(where, None, None, f"{tally.passed - decoded} record(s) passed"
                            " imgrec's checks but TensorFlow could not decode them"))  # fmt: skip
    listed = entries(files)
    if listed is None or limit is not None and tally.passed >= limit:
        return lost  # no manifest to compare with, or the read stopped at the limit
    expected: dict[str, int] = {}
    for f, (_m, entry) in zip(files, listed, strict=True):
        expected[str(f)] = expected.get(str(f), 0) + entry.records
    for shard, records in expected.items():
        found = tally.found.get(shard, 0)
        if found != records:
            message = f"the manifest lists {records} records; {found} were found in the file"
            lost.append(Problem(shard, None, None, message))
    return lost


def _images(tf: Any, ds: Any) -> Iterator[tuple[Any, str, dict[str, Any] | None]]:
    """``(image, filename, annotations)`` of each record ``ds`` yields (annotations: None in
    a dataset packed without them). A checked record that TensorFlow still cannot decode
    (image data damaged past its header) ends the loop with an error naming where it
    happened; what was written so far stays."""
    iterator = iter(ds)
    last = ""
    while True:
        try:
            element = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            after = f"the record after {last!r}" if last else "the first record"
            message = e.message.splitlines()[0] if e.message else type(e).__name__
            raise ImgrecError(f"TensorFlow could not decode {after}: {message}") from None
        extra = None
        if isinstance(element, dict):  # packed with annotations
            image, filename = element["image"], element["filename"]
            names = ("bounding_boxes", "objects", "fields", "segmentation_mask", "keypoints",
                     "object_masks")  # fmt: skip
            extra = {k: element[k] for k in names if k in element}
        else:
            image, _label, filename = element
        last = filename.numpy().decode("utf-8", "surrogateescape")
        yield image, last, extra


class _Depth(enum.Enum):
    """The bits per channel of ``--to png``: every image's when the manifest says the
    dataset has one depth; in a mix (or without a manifest), each image's own: 16 unless 8
    hold it exactly (a float image says no more of where it came from)."""

    EIGHT = 8
    SIXTEEN = 16
    EACH = 0


class _Writer:
    """One file per record under OUT: ``.npy`` as decoded, or ``.png`` at ``depth``."""

    def __init__(self, tf: Any, out: Path, to: str, depth: _Depth) -> None:
        self.tf, self.to, self.depth = tf, to, depth
        self.names = OutputNames(out, "." + to)
        self.written = 0

    def write(self, image: Any, name: str, index: int, extra: dict[str, Any] | None) -> None:
        path = self.names.path_for(name, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.to == "npy":
            np.save(path, image.numpy())
        else:
            path.write_bytes(_png(self.tf, image, self.depth))
        if extra is not None and "segmentation_mask" in extra:  # its class indices, as PNG
            mask = extra.pop("segmentation_mask").numpy()[..., 0]
            Image.fromarray(mask, "L").save(path.with_name(path.name + ".mask.png"))
        if extra is not None and "object_masks" in extra:
            _objects_png(
                extra.pop("object_masks").numpy(), path.with_name(path.name + ".objects.png")
            )
        if extra is not None:  # the annotations beside the image, as dataset() gives them
            sidecar = path.with_name(path.name + ".json")
            sidecar.write_text(json.dumps(_as_json(name, extra), ensure_ascii=False) + "\n")
        self.written += 1


def _objects_png(masks: np.ndarray, path: Path) -> None:
    """The instance masks ((N, H, W), 1 inside) as one PNG of object numbers: 0 for no
    object, k for the k-th in the ``.json`` beside it (a later object over an earlier one
    where they overlap); 16-bit past 255 objects."""
    wide = np.uint8 if len(masks) < 256 else np.uint16
    height, width = int(masks.shape[1]), int(masks.shape[2])
    numbers = np.zeros((height, width), wide)
    for k, mask in enumerate(masks, 1):
        numbers[mask == 1] = k
    if wide is np.uint8:
        Image.fromarray(numbers, "L").save(path)
    else:
        Image.frombytes("I;16", (width, height), numbers.astype("<u2").tobytes()).save(path)


def _as_json(name: str, extra: dict[str, Any]) -> dict[str, Any]:
    """An example's annotations as JSON: boxes ``rel_yxyx`` (fractions of the image)."""

    def plain(value: Any) -> Any:
        v = value.numpy()
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v.tolist() if isinstance(v, np.ndarray) else v.item()

    boxes = extra["bounding_boxes"]
    points = {}
    if "keypoints" in extra:  # (y, x) fractions per object and slot, COCO's visibility
        points = {"keypoints": {"format": "rel_yx", **{k: plain(v) for k, v in
                                                       extra["keypoints"].items()}}}  # fmt: skip
    return {
        "filename": name,
        "bounding_boxes": {
            "format": "rel_yxyx",
            "boxes": plain(boxes["boxes"]),
            "labels": plain(boxes["labels"]),
        },  # fmt: skip
        "objects": {k: plain(v) for k, v in extra["objects"].items()},
        "fields": {k: plain(v) for k, v in extra["fields"].items()},
        **points,
    }


def _png(tf: Any, image: Any, depth: _Depth) -> bytes:
    wide = tf.uint8 if depth is _Depth.EIGHT else tf.uint16
    arr = tf.image.convert_image_dtype(tf.cast(image, tf.float32), wide, saturate=True).numpy()
    if depth is _Depth.EACH and not (arr % 257).any():  # an 8-bit image, widened x257
        arr = (arr // 257).astype(np.uint8)
    h, w, c = arr.shape
    if arr.dtype == np.uint16 and c > 1:  # 32-, 48- and 64-bit PNGs, which Pillow cannot write
        return bytes(tf.io.encode_png(arr).numpy())
    if arr.dtype == np.uint16:
        im = Image.frombytes("I;16", (w, h), arr.astype("<u2").tobytes())
    else:
        im = Image.fromarray(arr[..., 0] if c == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()
