"""The record schema: the only module that knows the feature keys.

Records are ``tf.train.Example`` protos. They are built and parsed with the protobuf runtime
from a descriptor equivalent to TensorFlow's ``example.proto`` (same field numbers and
types), so packing and inspecting need no TensorFlow. Serialisation is deterministic (map
keys sorted), which is what makes shards byte-reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

ENCODED = "image/encoded"
RAW = "image/raw"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"
SHAPE = "image/shape"
DTYPE = "image/dtype"
LABEL = "image/class/label"
TEXT = "image/class/text"
FILENAME = "image/filename"
SHA256 = "image/key/sha256"
# EXIF orientation (2..8) of passed-through JPEG bytes, applied on decode. Absent means 1.
ORIENTATION = "image/orientation"
# Every label of a multi-label record (converted from MXNet RecordIO). Absent: none.
LABELS = "image/class/labels"

FORMATS = ("jpeg", "png", "raw")
DTYPES = {"uint8": 1, "uint16": 2, "int32": 4, "float32": 4}


def _build_example_class() -> Any:
    """Message classes for tensorflow/core/example/{example,feature}.proto, in a private pool."""
    f = descriptor_pb2.FileDescriptorProto(
        name="imgrec/tf_example.proto", package="imgrec_tf", syntax="proto3"
    )
    fd = descriptor_pb2.FieldDescriptorProto
    rep, opt = fd.LABEL_REPEATED, fd.LABEL_OPTIONAL

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
        return m

    message("BytesList", ("value", 1, fd.TYPE_BYTES, rep, ""))
    message("FloatList", ("value", 1, fd.TYPE_FLOAT, rep, ""))
    message("Int64List", ("value", 1, fd.TYPE_INT64, rep, ""))
    feature = message(
        "Feature",
        ("bytes_list", 1, fd.TYPE_MESSAGE, opt, ".imgrec_tf.BytesList"),
        ("float_list", 2, fd.TYPE_MESSAGE, opt, ".imgrec_tf.FloatList"),
        ("int64_list", 3, fd.TYPE_MESSAGE, opt, ".imgrec_tf.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message(
        "Features", ("feature", 1, fd.TYPE_MESSAGE, rep, ".imgrec_tf.Features.FeatureEntry")
    )
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=fd.TYPE_STRING, label=opt)
    entry.field.add(
        name="value", number=2, type=fd.TYPE_MESSAGE, label=opt, type_name=".imgrec_tf.Feature"
    )
    message("Example", ("features", 1, fd.TYPE_MESSAGE, opt, ".imgrec_tf.Features"))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("imgrec_tf.Example"))


Example = _build_example_class()


@dataclass(frozen=True)
class Record:
    """One image as stored: the payload plus what a reader needs to rebuild the tensor."""

    data: bytes  # encoded file bytes, or the raw C-order HWC array
    format: str  # "jpeg" | "png" | "raw"
    height: int
    width: int
    channels: int
    dtype: str
    label: int
    text: str
    filename: str
    sha256: str
    orientation: int = 1
    labels: tuple[float, ...] = ()

    @property
    def dense_bytes(self) -> int:
        return self.height * self.width * self.channels * DTYPES.get(self.dtype, 1)


def serialize(r: Record) -> bytes:
    ex = Example()
    feat = ex.features.feature

    def b(key: str, value: bytes) -> None:
        feat[key].bytes_list.value.append(value)

    def i(key: str, *values: int) -> None:
        feat[key].int64_list.value.extend(values)

    b(RAW if r.format == "raw" else ENCODED, r.data)
    b(FORMAT, r.format.encode())
    i(HEIGHT, r.height)
    i(WIDTH, r.width)
    i(CHANNELS, r.channels)
    i(SHAPE, r.height, r.width, r.channels)
    b(DTYPE, r.dtype.encode())
    i(LABEL, r.label)
    # File and folder names that are not valid UTF-8 keep their original bytes.
    b(TEXT, r.text.encode("utf-8", "surrogateescape"))
    b(FILENAME, r.filename.encode("utf-8", "surrogateescape"))
    b(SHA256, r.sha256.encode())
    if r.orientation != 1:
        i(ORIENTATION, r.orientation)
    if r.labels:
        feat[LABELS].float_list.value.extend(r.labels)
    out: bytes = ex.SerializeToString(deterministic=True)
    return out


class SchemaError(ValueError):
    """A record that is not a valid Example, or misses what a reader needs."""


def _first(feat: Any, key: str, kind: str) -> Any:
    if key not in feat:
        return None
    values = getattr(feat[key], kind).value
    return values[0] if len(values) else None


def parse(data: bytes, *, strict: bool = True) -> Record:
    """Parse one serialized Example into a Record.

    Accepts imgrec's schema and, for inspecting, the common ``image/encoded`` schema other
    tools write (TF's inception ``build_image_data.py``): missing fields get neutral values.
    ``strict`` checks that a raw payload's length matches shape x dtype.
    """
    ex = Example()
    try:
        ex.ParseFromString(data)
    except DecodeError as e:
        raise SchemaError(f"not a tf.train.Example ({e})") from None
    feat = ex.features.feature
    raw = _first(feat, RAW, "bytes_list")
    encoded = _first(feat, ENCODED, "bytes_list")
    if raw is None and encoded is None:
        raise SchemaError(f"record has neither {ENCODED} nor {RAW}")
    fmt = (
        (_first(feat, FORMAT, "bytes_list") or (b"raw" if raw is not None else b""))
        .decode("utf-8", "replace")
        .lower()
    )
    if fmt == "jpg":
        fmt = "jpeg"
    shape = list(feat[SHAPE].int64_list.value) if SHAPE in feat else []
    if len(shape) == 3:
        height, width, channels = shape
    else:
        height = _first(feat, HEIGHT, "int64_list") or 0
        width = _first(feat, WIDTH, "int64_list") or 0
        channels = _first(feat, CHANNELS, "int64_list") or 0
    dtype = (_first(feat, DTYPE, "bytes_list") or b"uint8").decode("utf-8", "replace")
    label = _first(feat, LABEL, "int64_list")
    rec = Record(
        data=raw if raw is not None else encoded,
        format=fmt,
        height=int(height),
        width=int(width),
        channels=int(channels),
        dtype=dtype,
        label=-1 if label is None else int(label),
        text=(_first(feat, TEXT, "bytes_list") or b"").decode("utf-8", "surrogateescape"),
        filename=(_first(feat, FILENAME, "bytes_list") or b"").decode("utf-8", "surrogateescape"),
        sha256=(_first(feat, SHA256, "bytes_list") or b"").decode("ascii", "replace"),
        orientation=int(_first(feat, ORIENTATION, "int64_list") or 1),
        labels=tuple(feat[LABELS].float_list.value) if LABELS in feat else (),
    )
    if strict:
        validate(rec)
    return rec


def validate(r: Record) -> None:
    if r.format not in FORMATS:
        raise SchemaError(f"unknown image/format {r.format!r} (expected one of {FORMATS})")
    if r.dtype not in DTYPES:
        raise SchemaError(f"unknown image/dtype {r.dtype!r} (expected one of {tuple(DTYPES)})")
    if r.format == "raw":
        if min(r.height, r.width, r.channels) <= 0:
            raise SchemaError(
                f"raw record needs a positive shape, got {[r.height, r.width, r.channels]}"
            )
        if len(r.data) != r.dense_bytes:
            raise SchemaError(
                f"raw payload is {len(r.data)} bytes but shape {[r.height, r.width, r.channels]}"
                f" x {r.dtype} needs {r.dense_bytes}"
            )
    if not 1 <= r.orientation <= 8:
        raise SchemaError(f"image/orientation {r.orientation} is not an EXIF orientation (1..8)")
