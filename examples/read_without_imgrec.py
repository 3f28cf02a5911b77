"""Read an imgrec dataset with plain TensorFlow, using only the record schema (docs/schema.md).

    python examples/read_without_imgrec.py DATASET_FOLDER

Decodes every record to a float32 HWC tensor in [0, 1] and prints the record count and the
count per label. Nothing from imgrec is imported: this is what a consumer of the shards
needs to know. It handles

* raw records (``image/raw``: C-order HWC pixels; little-endian, as ``tf.io.decode_raw``
  reads by default) of every ``image/dtype`` (uint8, uint16, int32, float32);
* encoded records (``image/encoded``, ``image/format`` jpeg or png) at their stored bit depth
  (uint8, or uint16 for 16-bit PNG) and channel count (``image/channels``);
* ``image/orientation`` (EXIF 2..8, only on JPEG/PNG bytes kept as they were), applied
  after decoding the way ``PIL.ImageOps.exif_transpose`` does.

``decode`` is a graph function, usable in ``tf.data.Dataset.map``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

SPEC = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/raw": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/shape": tf.io.FixedLenFeature([3], tf.int64),
    "image/channels": tf.io.FixedLenFeature([], tf.int64),
    "image/dtype": tf.io.FixedLenFeature([], tf.string),
    "image/orientation": tf.io.FixedLenFeature([], tf.int64, default_value=1),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/class/text": tf.io.FixedLenFeature([], tf.string),
}

RAW_DTYPES = ("uint8", "uint16", "int32", "float32")
# (format, dtype, channels) an encoded record can have. JPEG is 8-bit gray or RGB; PNG is 8-
# or 16-bit, gray, RGB or RGBA (imgrec stores 16-bit colour raw, but a PNG decoder handles it).
ENCODED = [("jpeg", "uint8", c) for c in (1, 3)] + [
    ("png", d, c) for d in ("uint8", "uint16") for c in (1, 3, 4)
]


def to_float(image: tf.Tensor) -> tf.Tensor:
    # uint8 -> x / 255, uint16 -> x / 65535, int32 -> x / (2**31 - 1), float32 unchanged.
    return tf.image.convert_image_dtype(image, tf.float32)


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """EXIF orientation 1..8, as PIL.ImageOps.exif_transpose applies it."""
    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, k=2),  # 3: upside down
        lambda: tf.image.flip_up_down(image),  # 4: mirrored upside down
        lambda: tf.image.transpose(image),  # 5: transposed
        lambda: tf.image.rot90(image, k=3),  # 6: turned 90 degrees clockwise
        lambda: tf.image.rot90(tf.image.transpose(image), k=2),  # 7: transversed
        lambda: tf.image.rot90(image, k=1),  # 8: turned 90 degrees anticlockwise
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def decode(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One serialized record -> (float32 HWC image in [0, 1], label, class text)."""
    f = tf.io.parse_single_example(serialized, SPEC)
    fmt = tf.strings.lower(f["image/format"])
    dtype = f["image/dtype"]
    channels = f["image/channels"]

    # The decoders take dtype and channels as attributes, not tensors: one branch per
    # combination, chosen by matching the record's own values.
    keys, branches = [], []
    for d in RAW_DTYPES:
        keys.append(f"raw {d}")
        branches.append(
            lambda d=d: to_float(
                tf.reshape(tf.io.decode_raw(f["image/raw"], tf.as_dtype(d)), f["image/shape"])
            )
        )
    for kind, d, c in ENCODED:
        keys.append(f"{kind} {d} {c}")
        if kind == "jpeg":
            # INTEGER_ACCURATE gives exactly Pillow's (and imgrec's) pixels.
            branches.append(
                lambda c=c: to_float(
                    tf.io.decode_jpeg(f["image/encoded"], channels=c, dct_method="INTEGER_ACCURATE")
                )
            )
        else:
            branches.append(
                lambda d=d, c=c: to_float(
                    tf.io.decode_png(f["image/encoded"], channels=c, dtype=tf.as_dtype(d))
                )
            )
    key = tf.where(
        fmt == "raw",
        tf.strings.join(["raw", dtype], " "),
        tf.strings.join([fmt, dtype, tf.strings.as_string(channels)], " "),
    )
    matches = tf.where(tf.equal(keys, key))[:, 0]
    tf.debugging.assert_equal(tf.size(matches), 1, message="unsupported format/dtype/channels")
    image = tf.switch_case(tf.cast(matches[0], tf.int32), branches)

    image = orient(image, f["image/orientation"])
    # image/shape is the shape after orientation: check it, and give the tensor a known rank.
    tf.debugging.assert_equal(tf.shape(image, tf.int64), f["image/shape"])
    image = tf.ensure_shape(image, [None, None, None])
    return image, f["image/class/label"], f["image/class/text"]


def dataset(folder: str) -> tf.data.Dataset:
    files = sorted(tf.io.gfile.glob(os.path.join(folder, "*.tfrecord")))
    if not files:
        raise SystemExit(f"no *.tfrecord shards in {folder}")
    return tf.data.TFRecordDataset(files).map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} DATASET_FOLDER")
    counts: Counter[tuple[int, str]] = Counter()
    for image, label, text in dataset(sys.argv[1]):
        assert image.dtype == tf.float32 and image.shape.rank == 3
        counts[int(label), text.numpy().decode()] += 1
    print(f"records: {sum(counts.values())}")
    for (label, text), n in sorted(counts.items()):
        print(f"label {label} {text or '(unlabelled)'}: {n}")


if __name__ == "__main__":
    main()
