"""TFDS metadata beside the shards, so that ``tfds.builder_from_directory(OUT)`` reads them.

Three files, made from the manifest alone (no record is read, none changes):

- ``dataset_info.json``: the splits, each with its shards' record counts and bytes, and a
  ``filepathTemplate`` naming imgrec's own shard files (``data-00000-of-00004.tfrecord``;
  ``train-00000-of-00003.tfrecord`` with ``--split``). A dataset packed without ``--split``
  is one split, ``train``.
- ``features.json``: one feature per record key, named as the record names it
  (``image/encoded``, ``image/class/label``, ...). TFDS parses a record by those flat names,
  so each maps onto the existing key. ``image/orientation`` is left out: records carry it
  only when it is not 1, and TFDS has no optional features.
- ``image.class.label.labels.txt``: the class names, one a line.

Only fields that tensorflow-datasets 4.6.0 knows are written: TFDS parses these files
strictly, and a field it does not know is an error. 4.6.0 is the first release that reads
``filepathTemplate`` (``SplitInfo.filepath_template`` in ``dataset_info.proto``; 4.5.2 has
no such field, and its default names, ``NAME-SPLIT.tfrecord-00000-of-00001``, are not
imgrec's). Neither ``fileFormat`` (tfrecord is the default) nor ``moduleName`` is written.

Nothing here imports TensorFlow or TFDS.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import __version__
from ..core.errors import InputError
from ..core.storage import Folder
from ..format import schema
from ..format.manifest import Manifest, ShardEntry
from ..format.stats import UNLABELLED

INFO = "dataset_info.json"
FEATURES = "features.json"
LABEL = schema.LABEL
LABEL_NAMES = "image.class.label.labels.txt"  # TFDS's file name for the feature's names
SPLIT = "train"  # the one split of a dataset packed without --split

_CLS = "tensorflow_datasets.core.features."
_DICT = _CLS + "features_dict.FeaturesDict"
_TENSOR = _CLS + "tensor_feature.Tensor"
_TEXT = _CLS + "text_feature.Text"
_IMAGE = _CLS + "image_feature.Image"
_CLASS = _CLS + "class_label_feature.ClassLabel"
_SHARD = re.compile(r"(?P<prefix>.+)-(?P<index>\d{5,})-of-(?P<count>\d{5,})\.tfrecord")


def write_metadata(folder: Folder, manifest: Manifest) -> list[str]:
    """Write TFDS's metadata for the dataset in ``folder`` (each file atomically,
    ``dataset_info.json`` last); returns the names written.

    Raises ``InputError``, naming why, for a dataset TFDS cannot read with one feature spec
    (encoded and raw records together; encoded images that are not 8- or 16-bit; no records;
    a manifest without stats), or whose split or shard names TFDS cannot use; metadata
    written for an earlier dataset in ``folder`` is then removed, as it would be wrong.
    """
    try:
        features, supervised, notes = _features(manifest)
        splits = _splits(manifest)
    except InputError:
        for name in (INFO, FEATURES, LABEL_NAMES):
            folder.delete(name)
        raise
    made = f"Images packed by imgrec {manifest.imgrec or __version__} from {manifest.source}."
    info: dict[str, Any] = {
        "name": _name(manifest.source),
        "description": " ".join([made, *notes]),
        "version": "1.0.0",
        "splits": splits,
        "sizeInBytes": str(sum(s.bytes for s in manifest.shards)),
    }
    if supervised:
        info["supervisedKeys"] = {"input": supervised, "output": LABEL}
    files = {INFO: _json(info), FEATURES: _json(features)}
    if manifest.labels:
        files[LABEL_NAMES] = "".join(f"{n}\n" for n in _names(manifest.labels))
    else:
        folder.delete(LABEL_NAMES)
    for name in reversed(files):  # TFDS starts from dataset_info.json: it comes last
        folder.write(name, files[name].encode("utf-8", "backslashreplace"))
    return list(files)


def _json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def _name(source: str) -> str:
    """A TFDS dataset name (snake_case, starting with a letter) from SRC's last part."""
    base = re.sub(r"\W+", "_", source.rstrip("/").rsplit("/", 1)[-1].lower()).strip("_")
    return base if re.fullmatch(r"[a-z]\w*", base, re.ASCII) else "imgrec"


def _names(labels: list[str]) -> list[str]:
    """Class names as TFDS reads them back: one a line, stripped, none blank or repeated."""
    out: list[str] = []
    taken: set[str] = set()  # a set: checking the list itself was quadratic in the classes
    for i, label in enumerate(labels):
        name = " ".join(label.split()) or f"class {i}"
        out.append(name if name not in taken else f"{name} ({i})")
        taken.add(out[-1])
    return out


def _splits(manifest: Manifest) -> list[dict[str, Any]]:
    """Each split's shards (in index order), record counts and bytes: exactly the manifest's."""
    by_split: dict[str, list[ShardEntry]] = {}
    for shard in manifest.shards:
        by_split.setdefault(shard.split or SPLIT, []).append(shard)
    if len(by_split) > 1 and any(s.split is None for s in manifest.shards):
        raise InputError("some shards belong to no split: TFDS needs every shard in one")
    out = []
    for split, shards in by_split.items():
        if not re.fullmatch(r"[\w-]*\w[\w-]*", split) or split.startswith("-"):
            raise InputError(
                f"split {split!r}: TFDS reads split names of letters, digits, _ and - only;"
                " repack with --split using such names"
            )
        out.append(
            {
                "name": split,
                "shardLengths": [str(s.records) for s in shards],
                "numBytes": str(sum(s.bytes for s in shards)),
                "filepathTemplate": _template(split, shards),
            }
        )
    return out


def _template(split: str, shards: list[ShardEntry]) -> str:
    """``PREFIX-{SHARD_X_OF_Y}.tfrecord``, checked to give back exactly these file names."""
    first = _SHARD.fullmatch(shards[0].file)
    prefix = first.group("prefix") if first else ""
    digits = max(5, len(str(len(shards))))  # as TFDS numbers shards
    expected = [f"{prefix}-{i:0{digits}d}-of-{len(shards):0{digits}d}.tfrecord"
                for i in range(len(shards))]  # fmt: skip
    if not prefix or "{" in prefix or "}" in prefix or expected != [s.file for s in shards]:
        raise InputError(
            f"the shards of split {split!r} ({shards[0].file}, ...) are not named"
            " NAME-00000-of-0000N.tfrecord, one run per split, as TFDS needs"
        )
    return prefix + "-{SHARD_X_OF_Y}.tfrecord"


def _feature(cls: str, field: str, content: dict[str, Any], doc: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"pythonClassName": cls, field: content}
    if doc:
        out["description"] = doc
    return out


def _tensor(shape: list[int], dtype: str, encoding: str = "none", doc: str = "") -> dict[str, Any]:
    content = {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": dtype}
    return _feature(_TENSOR, "tensor", content | {"encoding": encoding}, doc)


def _features(m: Manifest) -> tuple[dict[str, Any], str | None, list[str]]:
    """``features.json``, the supervised input key (None: no image tensor to give), and
    notes for the description."""
    stats = m.stats
    if stats is None:
        raise InputError("the manifest has no stats (made by hand?): repack to describe it")
    if not stats.records:
        # Nothing says what the images would be (format, dtype, channels), and TFDS makes no
        # such dataset itself: its writer stops with "No examples were yielded".
        raise InputError(
            "the dataset has no records (manifest.json lists what was skipped and why), so"
            " there are no images to describe for TFDS; pack a source with readable images"
        )
    formats, dtypes = set(stats.formats), sorted(stats.dtypes)
    channels = sorted(int(c) for c in stats.channels)
    (h0, h1), (w0, w1) = stats.height, stats.width
    fixed = h0 == h1 and w0 == w1
    notes = []
    text = _feature(_TEXT, "text", {})
    feats: dict[str, Any] = {}
    if "raw" in formats and formats != {"raw"}:
        raise InputError(
            "some records are encoded and some raw (32-bit images are always stored raw):"
            " TFDS needs one feature spec for all; repack with --format raw"
        )
    if formats == {"raw"} and fixed and len(dtypes) == 1 and len(channels) == 1:
        key = schema.RAW
        feats[key] = _tensor([h0, w0, channels[0]], dtypes[0], "bytes")
        notes.append(f"image/raw is the {h0}x{w0}x{channels[0]} {dtypes[0]} array (HWC).")
    elif formats == {"raw"}:
        key = None
        raw, shape = 'ex["image/raw"]', 'ex["image/shape"]'
        if len(dtypes) == 1:
            how = f"tf.reshape(tf.io.decode_raw({raw}, tf.{dtypes[0]}), {shape})"
        else:  # decode_raw takes one dtype for all records: NumPy reads each one's own
            how = f'np.frombuffer({raw}, ex["image/dtype"].decode()).reshape({shape})'
        feats[schema.RAW] = _tensor([], "string", doc=f"little-endian HWC bytes: image = {how}")
        notes.append(f"Images differ in size or kind: each is {how}.")
    else:
        if not set(dtypes) <= {"uint8", "uint16"}:
            raise InputError(f"encoded images of {', '.join(dtypes)}: TFDS decodes 8 and 16 bits")
        key = schema.ENCODED
        # As imgrec.dataset reads them: one channel count as stored, gray with colour as RGB.
        c = channels[0] if len(channels) == 1 else 3 if channels == [1, 3] else -1
        dtype = "uint16" if "uint16" in dtypes else "uint8"
        dims = [str(d) for d in (h0 if fixed else -1, w0 if fixed else -1, c)]
        feats[key] = _feature(_IMAGE, "image", {"shape": {"dimensions": dims}, "dtype": dtype})
        if dtype == "uint16" and "uint8" in dtypes:
            notes.append(
                "8-bit images are widened to uint16 as TensorFlow does it: PNG x257, JPEG x256."
            )
    if stats.oriented:
        notes.append(
            f"{stats.oriented} JPEG(s) carry an EXIF orientation in image/orientation, which"
            " TFDS does not apply: their pixels are as stored (imgrec.dataset applies it)."
        )
    feats |= {
        schema.FORMAT: text,
        schema.HEIGHT: _tensor([], "int64"),
        schema.WIDTH: _tensor([], "int64"),
        schema.CHANNELS: _tensor([], "int64"),
        schema.SHAPE: _tensor([3], "int64"),
        schema.DTYPE: text,
        LABEL: _feature(_CLASS, "classLabel", {"numClasses": str(len(m.labels))})
        if m.labels
        else _tensor([], "int64"),
        schema.TEXT: text,
        schema.FILENAME: text,
        schema.SHA256: text,
    }
    if stats.labels.get(UNLABELLED):
        notes.append("Label -1: no class (an image directly in SRC, for one).")
    if m.annotations is not None:
        feats |= _annotation_features(m, notes)
    return _feature(_DICT, "featuresDict", {"features": feats}), key, notes


def _annotation_features(m: Manifest, notes: list[str]) -> dict[str, Any]:
    """The object lists (one entry per object) and the per-image columns, as the records
    hold them (docs/annotations.md)."""
    assert m.annotations is not None
    feats: dict[str, Any] = {}
    if m.stats is not None and m.stats.annotated:
        boxes = "fractions (0..1) of the stored image's width and height"
        for key in schema.OBJECT_FLOATS:
            feats[key] = _tensor([-1], "float32", doc=boxes if "bbox" in key else "")
        for key in schema.OBJECT_INTS:
            feats[key] = _tensor([-1], "int64")
        feats[schema.OBJECT_TEXT] = _tensor([-1], "string")
        feats[schema.SOURCE_ID] = _tensor([], "string")
        classes = ", ".join(f"{i} {n}" for i, n in sorted(m.annotations.classes.items()))
        notes.append(
            "Objects: image/object/* are parallel lists, one entry per object; boxes are"
            f" fractions of the image; class ids (the dataset's own): {classes[:2000]}."
        )
    if m.stats is not None and m.stats.annotated and m.annotations.keypoints:
        k = m.annotations.points
        flat = f"N x {k}, object-major: {k} keypoints per object"
        for key in (schema.KEYPOINT_X, schema.KEYPOINT_Y):
            feats[key] = _tensor([-1], "float32", doc=f"fractions of the image; {flat}")
        feats[schema.KEYPOINT_VISIBILITY] = _tensor(
            [-1], "int64", doc=f"COCO's v: 0 not labelled, 1 not visible, 2 visible; {flat}"
        )
        feats[schema.KEYPOINT_NUM] = _tensor([-1], "int64", doc="labelled keypoints per object")
        feats[schema.KEYPOINT_TEXT] = _tensor([-1], "string", doc=f"each keypoint's name; {flat}")
        listed = sorted(m.annotations.keypoints.items())
        named = "; ".join(f"{i}: {', '.join(n)}" for i, n in listed)
        notes.append(
            f"Keypoints: image/object/keypoint/* hold {k} per object (the TF Object Detection"
            f" API's layout); names by class id: {named[:2000]}."
        )
    if m.annotations.instance_masks:
        feats[schema.OBJECT_MASK] = _tensor(
            [-1], "string", doc="PNG per object (1 channel, 1 inside), the image's size"
        )
    if m.annotations.masks:
        feats[schema.MASK] = _tensor([], "string", doc="PNG of class indices (255: ignore)")
        feats[schema.MASK_FORMAT] = _tensor([], "string")
    kinds = {"int": ([], "int64"), "float": ([], "float32"), "str": ([], "string"),
             "floats": ([-1], "float32")}  # fmt: skip
    for name, kind in m.annotations.columns.items():
        shape, dtype = kinds[kind]
        feats[schema.FIELD + name] = _tensor(shape, dtype, doc=f"per-image column {name!r}")
    return feats
