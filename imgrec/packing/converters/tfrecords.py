"""Other tools' TFRecord files: a file, a folder of them, or a glob.

Keys are found from the first record: the inception/slim ``build_image_data.py`` keys
(``image/encoded``, ``image/class/label``, ``image/class/text``, ``image/filename``), or a
TFDS image dataset's (``image``, ``label``); ``--keys image=...,label=...,text=...,
filename=...`` names them for anything else. TF Object Detection API records' objects
(``image/object/*``, found by those names whatever ``--keys`` says) are kept: ``objects.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from ...core import storage
from ...core.errors import InputError, ShardError
from ...core.storage import Location
from ...format.framing import frame_at, read_records
from ...format.options import PackOptions
from ...format.schema import Example
from ...images import loading
from ..discover import Ref, Walk
from .common import Found, walk_of
from .objects import Classes, annotated, detected, info, named, not_kept

KNOWN = (
    {"image": "image/encoded", "label": "image/class/label", "text": "image/class/text",
     "filename": "image/filename"},
    {"image": "image", "label": "label", "filename": "image/filename"},
)  # fmt: skip


def _files(src: Location) -> list[Location]:
    found: list[Location]
    if isinstance(src, Path) and src.is_dir():
        found = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                       and not p.name.endswith((".idx", ".json", ".txt")))  # fmt: skip
    elif any(c in str(src) for c in "*?["):
        found = storage.expand(str(src))
    else:
        found = [src]
    if not found:
        raise InputError("no TFRecord files here", str(src))
    return list(found)


def _keys(example: Any, opts: PackOptions, where: Location) -> dict[str, str]:
    if opts.source_keys:
        keys = dict(opts.source_keys)
        if "image" not in keys:
            raise InputError("--keys must name the image's key (image=...)")
        feature = example.features.feature
        for role, key in keys.items():  # a typo would give every record no label, silently
            if key not in feature:
                listed = ", ".join(sorted(feature)[:8])
                raise InputError(
                    f"--keys {role}={key}: the first record has no such key (it has {listed})",
                    str(where),
                )
        return keys
    feature = example.features.feature
    for keys in KNOWN:
        if keys["image"] in feature:
            return keys
    listed = ", ".join(sorted(feature)[:8])
    raise InputError(
        f"no image key this reader knows (it has {listed}); name them with --keys"
        " image=KEY,label=KEY",
        str(where),
    )


def _example(data: bytes) -> Any:
    """The record's Example; None when its bytes (whole by their CRC) are not one."""
    ex = Example()
    try:
        ex.ParseFromString(data)
    except DecodeError:
        return None
    return ex


def _label(example: Any, key: str | None, where: Location, n: int, offset: int) -> int | None:
    """The record's class number: an int64 label. A label of bytes ("3", or "cat") or
    floats is refused rather than read as a number or guessed at, or dropped: every record
    would be unlabelled, silently."""
    if not key or key not in example.features.feature:
        return None
    kind = example.features.feature[key].WhichOneof("kind")
    if kind not in (None, "int64_list"):
        raise ShardError(
            f"its label {key!r} is a {kind}, not the int64_list of class numbers imgrec reads;"
            " name an int64 key with --keys label=KEY, or leave label= out of --keys to"
            " convert the images unlabelled",
            str(where), n, offset,
        )  # fmt: skip
    return _value(example, key, "int64_list")  # type: ignore[no-any-return]


def _value(example: Any, key: str | None, kind: str) -> Any:
    if not key or key not in example.features.feature:
        return None
    values = getattr(example.features.feature[key], kind).value
    return values[0] if len(values) else None


def listing(src: Location, opts: PackOptions) -> Walk:
    files = _files(src)
    found = []
    keys: dict[str, str] | None = None
    classes: Classes | None = None
    warnings: list[str] = []
    for path in files:
        for n, (offset, data) in enumerate(read_records(path)):
            ex = _example(data)
            if ex is None:  # as a record failing its CRC is: the file is damaged
                raise ShardError("its bytes pass their CRCs but are not a tf.train.Example"
                                 " (written damaged, or not a TFRecord of Examples)",
                                 str(path), n, offset)  # fmt: skip
            if keys is None:
                keys = _keys(ex, opts, path)
                if detected(ex):
                    classes = Classes()
                    warnings = _not_kept(ex)
            label = _label(ex, keys.get("label"), path, n, offset)
            text = _value(ex, keys.get("text"), "bytes_list") or b""
            name = _value(ex, keys.get("filename"), "bytes_list") or b""
            image = _value(ex, keys["image"], "bytes_list") or b""
            ref = Ref("tfrecord", offset=offset, fields=(str(path), keys["image"]))
            boxed = None if classes is None else annotated(ex, str(path), n, classes)
            found.append(Found(ref, name.decode("utf-8", "surrogateescape"), label,
                               text.decode("utf-8", "surrogateescape"), len(image),
                               boxed))  # fmt: skip
    if classes is None:
        return walk_of(files[0], found, opts, 0)
    names = classes.named()
    found = [replace(f, annotated=named(f.annotated, names)) if f.annotated else f
             for f in found]  # fmt: skip
    walked = walk_of(files[0], found, opts, 0)
    walked.annotations = info(str(src), names, walked.items, warnings)
    return walked


def _not_kept(example: Any) -> list[str]:
    keys = not_kept(example)
    if not keys:
        return []
    return [f"the records' {', '.join(keys)} are not converted (imgrec keeps boxes, classes,"
            " area, is_crowd, difficult and truncated)"]  # fmt: skip


def read(container: Location, ref: Ref) -> bytes:
    path, key = storage.parse(ref.fields[0]), ref.fields[1]
    found = frame_at(path, ref.offset)
    if found.cut_short:
        raise loading.SkipImage("truncated", f"the record at byte {ref.offset} is cut short")
    if found.problem is not None or found.data is None:
        raise loading.SkipImage("corrupt", f"the record at byte {ref.offset} fails its CRC")
    example = _example(found.data)
    if example is None:
        raise loading.SkipImage("corrupt", f"the record at byte {ref.offset} is not an Example")
    value = _value(example, key, "bytes_list")
    if value is None:
        raise loading.SkipImage("corrupt", f"the record at byte {ref.offset} has no {key!r}")
    return bytes(value)
