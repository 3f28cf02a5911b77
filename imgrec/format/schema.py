"""The record schema: the only module that knows the feature keys.

Records are ``tf.train.Example`` protos (``tf_example``), built and parsed with the protobuf
runtime, so packing and inspecting need no TensorFlow. Serialisation is deterministic (map
keys sorted), which is what makes shards byte-reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from .tf_example import Example as Example  # re-exported: the record's message class

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
# The source's ICC profile when it describes the stored pixels (readers may convert with
# it), and the class of the source's profile (images.colour.KINDS); both absent: none.
ICC_PROFILE = "image/icc_profile"
COLOR_PROFILE = "image/color/profile"

# Objects, under the keys the TF Object Detection API and the TF Model Garden read
# (``tf_example_decoder.py``): parallel lists, one entry per object, boxes as fractions of
# the stored image's width and height. Written, possibly empty, in every record of a
# dataset packed with annotations; absent otherwise.
XMIN = "image/object/bbox/xmin"
YMIN = "image/object/bbox/ymin"
XMAX = "image/object/bbox/xmax"
YMAX = "image/object/bbox/ymax"
OBJECT_LABEL = "image/object/class/label"
OBJECT_TEXT = "image/object/class/text"
AREA = "image/object/area"
CROWD = "image/object/is_crowd"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
SOURCE_ID = "image/source_id"
# Instance masks (a COCO file's segmentations), as the OD API's PNG_MASKS and the Model
# Garden read them: one PNG per object (single channel, 1 inside, 0 outside) at the stored
# image's size, parallel to the lists above; written, possibly empty, in every record of a
# dataset with segmentations.
OBJECT_MASK = "image/object/mask"
OBJECT_FLOATS = (XMIN, YMIN, XMAX, YMAX, AREA)
OBJECT_INTS = (OBJECT_LABEL, CROWD, DIFFICULT, TRUNCATED)
# Keypoints (a dataset with them: COCO person keypoints), as the TF Object Detection API's
# create_coco_tf_record.py writes them and its tf_example_decoder.py reads them: K points
# per object, flattened object-major (N x K); x and y as fractions of the stored image's
# width and height, visibility COCO's v (0 not labelled, with x = y = 0; 1 labelled but not
# visible; 2 visible); num the labelled points per object (N); text each point's name (N x K).
KEYPOINT_X = "image/object/keypoint/x"
KEYPOINT_Y = "image/object/keypoint/y"
KEYPOINT_VISIBILITY = "image/object/keypoint/visibility"
KEYPOINT_NUM = "image/object/keypoint/num"
KEYPOINT_TEXT = "image/object/keypoint/text"
# A semantic mask (--masks), under DeepLab's keys: a PNG of class indices at the stored
# image's size (255: ignore), and its format.
MASK = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"
# A per-image field (a metadata.jsonl / .csv column) is FIELD + its name.
FIELD = "image/field/"

FORMATS = ("jpeg", "png", "raw")
DTYPES = {"uint8": 1, "uint16": 2, "int32": 4, "float32": 4}


@dataclass(frozen=True)
class Objects:
    """The objects of one image as stored: parallel tuples, one entry per object; boxes as
    fractions (0..1) of the stored image's width and height, areas in its pixels."""

    xmin: tuple[float, ...] = ()
    ymin: tuple[float, ...] = ()
    xmax: tuple[float, ...] = ()
    ymax: tuple[float, ...] = ()
    label: tuple[int, ...] = ()  # the dataset's own class ids
    text: tuple[str, ...] = ()
    area: tuple[float, ...] = ()
    crowd: tuple[int, ...] = ()
    difficult: tuple[int, ...] = ()
    truncated: tuple[int, ...] = ()
    source_id: str = ""
    # A dataset with keypoints: the record carries their keys (``keypointed``), K per object
    keypointed: bool = False
    keypoint_x: tuple[float, ...] = ()  # N x K, object-major
    keypoint_y: tuple[float, ...] = ()
    keypoint_visibility: tuple[int, ...] = ()
    keypoint_num: tuple[int, ...] = ()  # N
    keypoint_text: tuple[str, ...] = ()  # N x K
    masks: tuple[bytes, ...] | None = None  # a PNG per object; None: the dataset has none

    def lists(self) -> dict[str, tuple[float, ...] | tuple[int, ...] | tuple[str, ...]]:
        """Each parallel list by its record key."""
        return {
            XMIN: self.xmin, YMIN: self.ymin, XMAX: self.xmax, YMAX: self.ymax,
            OBJECT_LABEL: self.label, OBJECT_TEXT: self.text, AREA: self.area,
            CROWD: self.crowd, DIFFICULT: self.difficult, TRUNCATED: self.truncated,
        }  # fmt: skip


# A per-image field: (name, type, value); the type is one of FIELD_TYPES.
Field = tuple[str, str, int | float | str | tuple[float, ...]]
FIELD_TYPES = {"int": "int64_list", "float": "float_list", "str": "bytes_list",
               "floats": "float_list"}  # fmt: skip


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
    objects: Objects | None = None  # a dataset packed with annotations: every record's
    fields: tuple[Field, ...] = ()
    mask: bytes | None = None  # the semantic mask's PNG (--masks)
    mask_classes: tuple[int, ...] = ()  # the classes its pixels hold (for the statistics)
    icc: bytes | None = None
    profile: str = ""

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
    if r.icc is not None:
        b(ICC_PROFILE, r.icc)
    if r.profile:
        b(COLOR_PROFILE, r.profile.encode())
    if r.objects is not None:
        _put_objects(feat, r.objects)
    if r.mask is not None:
        b(MASK, r.mask)
        b(MASK_FORMAT, b"png")
    for name, kind, value in r.fields:
        values = value if isinstance(value, tuple) else (value,)
        encoded = [str(v).encode() for v in values] if kind == "str" else values
        getattr(feat[FIELD + name], FIELD_TYPES[kind]).value.extend(encoded)
    return bytes(ex.SerializeToString(deterministic=True))


def _put_objects(feat: Any, o: Objects) -> None:
    """Every object key, typed even when empty (no objects): readers parse each as a list."""
    lists = o.lists()
    for key in OBJECT_FLOATS:
        feat[key].float_list.SetInParent()
        feat[key].float_list.value.extend(lists[key])
    for key in OBJECT_INTS:
        feat[key].int64_list.SetInParent()
        feat[key].int64_list.value.extend(lists[key])
    feat[OBJECT_TEXT].bytes_list.SetInParent()
    feat[OBJECT_TEXT].bytes_list.value.extend(t.encode() for t in o.text)
    feat[SOURCE_ID].bytes_list.value.append(o.source_id.encode())
    if o.keypointed:
        for key, values in ((KEYPOINT_X, o.keypoint_x), (KEYPOINT_Y, o.keypoint_y)):
            feat[key].float_list.SetInParent()
            feat[key].float_list.value.extend(values)
        for key, ints in ((KEYPOINT_VISIBILITY, o.keypoint_visibility),
                          (KEYPOINT_NUM, o.keypoint_num)):  # fmt: skip
            feat[key].int64_list.SetInParent()
            feat[key].int64_list.value.extend(ints)
        feat[KEYPOINT_TEXT].bytes_list.SetInParent()
        feat[KEYPOINT_TEXT].bytes_list.value.extend(t.encode() for t in o.keypoint_text)
    if o.masks is not None:
        feat[OBJECT_MASK].bytes_list.SetInParent()
        feat[OBJECT_MASK].bytes_list.value.extend(o.masks)


def _objects(feat: Any) -> Objects | None:
    """The record's objects, None when it has none of their keys."""
    if XMIN not in feat:
        return None

    def values(key: str, kind: str) -> tuple[Any, ...]:
        return tuple(getattr(feat[key], kind).value) if key in feat else ()

    return Objects(
        xmin=values(XMIN, "float_list"),
        ymin=values(YMIN, "float_list"),
        xmax=values(XMAX, "float_list"),
        ymax=values(YMAX, "float_list"),
        label=values(OBJECT_LABEL, "int64_list"),
        text=tuple(t.decode("utf-8", "replace") for t in values(OBJECT_TEXT, "bytes_list")),
        area=values(AREA, "float_list"),
        crowd=values(CROWD, "int64_list"),
        difficult=values(DIFFICULT, "int64_list"),
        truncated=values(TRUNCATED, "int64_list"),
        source_id=(_first(feat, SOURCE_ID, "bytes_list") or b"").decode("utf-8", "replace"),
        keypointed=KEYPOINT_X in feat,
        keypoint_x=values(KEYPOINT_X, "float_list"),
        keypoint_y=values(KEYPOINT_Y, "float_list"),
        keypoint_visibility=values(KEYPOINT_VISIBILITY, "int64_list"),
        keypoint_num=values(KEYPOINT_NUM, "int64_list"),
        keypoint_text=tuple(
            t.decode("utf-8", "replace") for t in values(KEYPOINT_TEXT, "bytes_list")
        ),
        masks=values(OBJECT_MASK, "bytes_list") if OBJECT_MASK in feat else None,
    )


def _fields(feat: Any) -> tuple[Field, ...]:
    """The per-image fields, by name: text as a str, numbers as a tuple (typed "int" or
    "floats": one float and a list look alike here; the manifest's ``columns`` tells)."""
    out: list[Field] = []
    for key in sorted(k for k in feat if k.startswith(FIELD)):
        kind = feat[key].WhichOneof("kind")
        values = tuple(getattr(feat[key], kind).value) if kind else ()
        name = key[len(FIELD) :]
        if kind == "bytes_list":
            out.append((name, "str", b"".join(values).decode("utf-8", "replace")))
        elif kind == "int64_list":
            out.append((name, "int", tuple(float(v) for v in values)))
        elif kind == "float_list":
            out.append((name, "floats", tuple(float(v) for v in values)))
    return tuple(out)


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
    named = _first(feat, FORMAT, "bytes_list") or (b"raw" if raw is not None else b"")
    fmt = named.decode("utf-8", "replace").lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
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
        objects=_objects(feat),
        fields=_fields(feat),
        mask=_first(feat, MASK, "bytes_list"),
        icc=_first(feat, ICC_PROFILE, "bytes_list"),
        profile=(_first(feat, COLOR_PROFILE, "bytes_list") or b"").decode("utf-8", "replace"),
    )
    if strict:
        validate(rec)
    return rec


def validate(r: Record) -> None:
    if r.format not in FORMATS:
        raise SchemaError(f"unknown image/format {r.format!r} (expected one of {FORMATS})")
    if r.dtype not in DTYPES:
        raise SchemaError(f"unknown image/dtype {r.dtype!r} (expected one of {tuple(DTYPES)})")
    shape = [r.height, r.width, r.channels]
    if r.format == "raw" and min(shape) <= 0:
        raise SchemaError(f"raw record needs a positive shape, got {shape}")
    if r.format == "raw" and len(r.data) != r.dense_bytes:
        raise SchemaError(
            f"raw payload is {len(r.data)} bytes but shape {shape} x {r.dtype} needs"
            f" {r.dense_bytes}"
        )
    if not 1 <= r.orientation <= 8:
        raise SchemaError(f"image/orientation {r.orientation} is not an EXIF orientation (1..8)")
    if r.objects is not None:
        _validate_objects(r.objects)


def _validate_objects(o: Objects) -> None:
    """Parallel lists of one length (crowd, difficult, truncated and area may be absent),
    boxes inside [0, 1] with their corners in order."""
    counts = {key: len(v) for key, v in o.lists().items()}
    n = counts[XMIN]
    optional = (AREA, CROWD, DIFFICULT, TRUNCATED, OBJECT_TEXT)
    wrong = {k: c for k, c in counts.items() if c != n and not (k in optional and c == 0)}
    if wrong:
        listed = ", ".join(f"{k} {c}" for k, c in wrong.items())
        raise SchemaError(f"the object lists differ in length: {XMIN} {n}, {listed}")
    if o.masks is not None and len(o.masks) != n:
        raise SchemaError(f"{OBJECT_MASK} has {len(o.masks)} masks for {n} objects")
    for i, box in enumerate(zip(o.xmin, o.ymin, o.xmax, o.ymax, strict=True)):
        x0, y0, x1, y1 = box
        if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
            raise SchemaError(
                f"object {i}'s box (xmin {x0}, ymin {y0}, xmax {x1}, ymax {y1}) is not inside"
                " [0, 1] with its corners in order"
            )
    if o.keypointed:
        _validate_keypoints(o, n)


def _validate_keypoints(o: Objects, n: int) -> None:
    """x, y and visibility N x K each (text too, or absent; num N, or absent), visibility
    0, 1 or 2, labelled points inside [0, 1]."""
    total = len(o.keypoint_x)
    if (n == 0 and total) or (n and total % n):
        raise SchemaError(f"{KEYPOINT_X} has {total} values, not K for each of {n} objects")
    wrong = [
        f"{key} {len(values)}"
        for key, values in ((KEYPOINT_Y, o.keypoint_y), (KEYPOINT_VISIBILITY,
                            o.keypoint_visibility), (KEYPOINT_TEXT, o.keypoint_text))
        if len(values) != total and not (key == KEYPOINT_TEXT and not values)
    ]  # fmt: skip
    if len(o.keypoint_num) not in (0, n):
        wrong.append(f"{KEYPOINT_NUM} {len(o.keypoint_num)} (one per object: {n})")
    if wrong:
        raise SchemaError(
            f"the keypoint lists differ in length: {KEYPOINT_X} {total}, {', '.join(wrong)}"
        )
    k = total // n if n else 0
    for i, (x, y, v) in enumerate(zip(o.keypoint_x, o.keypoint_y, o.keypoint_visibility,
                                      strict=True)):  # fmt: skip
        if v not in (0, 1, 2):
            raise SchemaError(f"object {i // k}'s keypoint {i % k} has visibility {v}, not 0..2")
        if v and not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise SchemaError(
                f"object {i // k}'s keypoint {i % k} (x {x}, y {y}) is labelled but not inside"
                " [0, 1]"
            )
