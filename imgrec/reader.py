"""Reading shards back into tensors: the one decode path of the project.

``imgrec decode`` and ``imgrec.dataset`` both go through ``dataset``. Records are decoded on
the host into their stored integer dtype (uint8 or uint16), then converted to float by
``tf.image.convert_image_dtype`` on the chosen device: on a GPU only the integer tensor
crosses the bus (a quarter of the bytes of float32 for uint8).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import schema
from .checks import Problem, check_record
from .deps import import_tf
from .errors import DependencyError, ImgrecError
from .shards import Known, describe, resolve
from .storage import Location
from .tfrecord import scan

if TYPE_CHECKING:
    import tensorflow as tf


def pick_device(device: str) -> str:
    """'auto' | 'cpu' | 'gpu' -> a TensorFlow device name."""
    tf = import_tf()
    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DependencyError("--device gpu was asked for, but TensorFlow sees no GPU here")
    if device not in ("auto", "gpu"):
        raise ImgrecError(f"unknown device {device!r}; use auto, cpu or gpu")
    return "/GPU:0" if gpus else "/CPU:0"


def _feature_spec(tf: Any) -> dict[str, Any]:
    s, i = tf.string, tf.int64
    fixed = tf.io.FixedLenFeature
    return {
        schema.ENCODED: fixed([], s, default_value=""),
        schema.RAW: fixed([], s, default_value=""),
        schema.FORMAT: fixed([], s, default_value=""),
        schema.SHAPE: fixed([3], i, default_value=[0, 0, 0]),
        schema.HEIGHT: fixed([], i, default_value=0),
        schema.WIDTH: fixed([], i, default_value=0),
        schema.CHANNELS: fixed([], i, default_value=0),
        schema.DTYPE: fixed([], s, default_value="uint8"),
        schema.LABEL: fixed([], i, default_value=-1),
        schema.FILENAME: fixed([], s, default_value=""),
        schema.ORIENTATION: fixed([], i, default_value=1),
    }


@dataclass(frozen=True)
class Layout:
    """What the manifests say about the records, so the decode graph can leave out branches
    no record needs (each one costs on every image). None: unknown, keep every branch."""

    formats: frozenset[str] | None = None
    channels: frozenset[int] | None = None
    oriented: bool = True  # some record may carry an EXIF orientation to apply


def _decode_stored(tf: Any, f: dict[str, Any], dtype: Any, layout: Layout = Layout()) -> Any:
    """Decode one parsed record into an HWC tensor of its stored dtype."""
    shape = f[schema.SHAPE]
    declared = shape[0] > 0  # records from other tools may have no image/shape
    channels = tf.where(declared, shape[-1], f[schema.CHANNELS])

    def raw() -> Any:
        return tf.reshape(tf.io.decode_raw(f[schema.RAW], dtype), shape)

    def by_channels(decode: Any, choices: tuple[int, ...]) -> Any:
        # The decoders take channels as an attribute: one branch per value that can occur;
        # an unexpected count falls back to 0 (as stored), caught by the shape check below.
        if layout.channels is not None and len(layout.channels) == 1:
            (only,) = layout.channels
            if only in choices:
                return decode(only)
        index = tf.argmax(tf.cast(tf.equal(tf.constant(choices, tf.int64), channels), tf.int32))
        branches = [(lambda c=c: decode(c)) for c in choices]
        return tf.switch_case(tf.cast(index, tf.int32), branches)

    def jpeg() -> Any:
        # INTEGER_ACCURATE is the IDCT Pillow uses: the two then agree exactly, where TF's
        # default (INTEGER_FAST) is off by up to about 6 levels.
        return by_channels(
            lambda c: tf.io.decode_jpeg(
                f[schema.ENCODED], channels=c, dct_method="INTEGER_ACCURATE"
            ),
            (0, 1, 3),
        )

    def png() -> Any:
        return by_channels(
            lambda c: tf.io.decode_png(f[schema.ENCODED], channels=c, dtype=dtype), (0, 1, 3, 4)
        )

    def other() -> Any:  # other tools' records: GIF, BMP, ... by content
        return by_channels(
            lambda c: tf.io.decode_image(
                f[schema.ENCODED], channels=c, dtype=dtype, expand_animations=False
            ),
            (0, 1, 3, 4),
        )

    decoders = {"raw": raw}
    if dtype in (tf.uint8, tf.uint16):
        decoders["png"] = png
    if dtype == tf.uint8:
        decoders["jpeg"] = jpeg
    present = [k for k in decoders if layout.formats is None or k in layout.formats]
    if layout.formats is not None and len(present) == 1 and set(layout.formats) <= set(present):
        image = decoders[present[0]]()
    else:
        fmt = tf.strings.lower(f[schema.FORMAT])
        image = tf.case(
            [(fmt == k, decoders[k]) for k in present],
            default=other if dtype in (tf.uint8, tf.uint16) else raw,
        )
    if layout.oriented:
        image = apply_orientation(tf, image, f[schema.ORIENTATION])
    # No per-record check that the decoded shape is the declared one: an assertion in the
    # map costs about a quarter of the read rate. Raw records are held to their shape by the
    # reshape; sizes the manifest knows are enforced by ensure_shape in dataset(); and the
    # checked path (on_problem: imgrec decode, verify) compares every header with its shape.
    return tf.ensure_shape(image, [None, None, None])


def apply_orientation(tf: Any, image: Any, orientation: Any) -> Any:
    """Apply an EXIF orientation (1..8) the way PIL.ImageOps.exif_transpose does."""

    def t(x: Any) -> Any:
        return tf.transpose(x, [1, 0, 2])

    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: t(image),
        lambda: tf.reverse(t(image), [1]),
        lambda: tf.reverse(t(image), [0, 1]),
        lambda: tf.reverse(t(image), [0]),
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)


def to_float(tf: Any, image: Any, dtype: Any) -> Any:
    """The only integer -> float conversion: uint8 / 255, uint16 / 65535, floats unchanged."""
    return tf.image.convert_image_dtype(image, dtype)


def _checked_records(
    tf: Any,
    files: Sequence[Location],
    shuffle: bool,
    seed: int | None,
    on_problem: Callable[[Problem], None],
) -> Any:
    """Serialized records that passed imgrec's checks, read by imgrec's own framing reader."""
    order = list(files)
    if shuffle:
        random.Random(seed).shuffle(order)

    def records() -> Iterator[bytes]:
        for path in order:
            for frame in scan(path):
                issue = frame.problem
                if issue is None and frame.data is not None:
                    _rec, issue = check_record(frame.data)
                if issue is not None:
                    on_problem(Problem(str(path), frame.index, frame.offset, issue))
                    continue
                assert frame.data is not None
                yield frame.data

    return tf.data.Dataset.from_generator(records, output_signature=tf.TensorSpec([], tf.string))


def _check_batchable(known: Known | None, resize: tuple[int, int] | None) -> None:
    """Refuse, up front and with the way out, a batch TensorFlow could not stack."""
    if known is None or known.height is None or known.width is None:
        return  # shards without a manifest: TensorFlow reports a mismatch when it meets one
    heights, widths = known.height, known.width
    if len(known.channels) > 1:
        listed = " and ".join(str(c) for c in sorted(known.channels))
        raise ImgrecError(
            f"these images have {listed} channels, which cannot share"
            " a batch; pack with --channels 1, 3 or 4, or read without batch_size"
        )
    if resize is None and (heights[0] != heights[1] or widths[0] != widths[1]):
        raise ImgrecError(
            f"images range from {heights[0]}x{widths[0]} to {heights[1]}x{widths[1]} (HxW);"
            " pass resize=(height, width) to batch them, pack with --resize, or read"
            " without batch_size"
        )


def dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    resize: tuple[int, int] | None = None,
    dtype: Any = "float32",
    device: str = "auto",
    labels: bool = True,
    with_filenames: bool = False,
    deterministic: bool = True,
    limit: int | None = None,
    split: str | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    records: Sequence[bytes] | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label)`` (or images alone with ``labels=False``).

    Images are HWC tensors of ``dtype`` in [0, 1] (through ``tf.image.convert_image_dtype``;
    float sources keep their values). ``with_filenames`` adds the record's filename as a last
    element. Batching images of different sizes needs ``resize=(height, width)``. ``split``
    reads one split of a dataset packed with ``--split``.

    With ``on_problem``, every record is checked before TensorFlow sees it (both CRCs, the
    schema, the encoded header against the declared shape): a damaged or malformed record is
    passed to ``on_problem`` (naming shard, record and offset) and left out, and the rest
    still decode. Without it, records stream straight from ``tf.data.TFRecordDataset``
    (fastest; a damaged shard then stops iteration with TensorFlow's error).

    ``records`` decodes these serialized records (taken from ``paths``) instead of reading
    the shards: the preview uses it to show chosen records through this same path.
    """
    tf = import_tf()
    files = resolve(paths, split)
    known = describe(files)
    if batch_size is not None:
        _check_batchable(known, resize)
    out_dtype = tf.as_dtype(dtype)
    target = pick_device(device)
    # Without a manifest the dtypes are unknown: every one is handled, on the host.
    kinds = sorted(known.dtypes if known else schema.DTYPES)
    spec = _feature_spec(tf)
    layout = Layout() if known is None else Layout(known.formats, known.channels, known.oriented)
    if len(kinds) == 1:
        stored = tf.as_dtype(kinds[0])

        def decode(f: Any) -> Any:
            return _decode_stored(tf, f, stored, layout)

    else:
        # Mixed dtypes (8- and 16-bit images in one dataset) cannot share one integer
        # tensor type, so these are converted to float on the host instead.
        def decode(f: Any) -> Any:
            branches = [
                (lambda k=k: to_float(tf, _decode_stored(tf, f, tf.as_dtype(k), layout), out_dtype))
                for k in kinds
            ]
            index = tf.argmax(tf.cast(tf.equal(f[schema.DTYPE], kinds), tf.int32))
            return tf.switch_case(tf.cast(index, tf.int32), branches)

    # Static shapes where the manifest knows them, so Keras sees (H, W, C), not (?, ?, ?).
    static: list[int | None] = [None, None, None]
    if known is not None and known.height is not None and known.width is not None:
        (h0, h1), (w0, w1) = known.height, known.width
        static = [h0 if h0 == h1 else None, w0 if w0 == w1 else None, None]
        static[2] = next(iter(known.channels)) if len(known.channels) == 1 else None

    def parse(serialized: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.ensure_shape(decode(f), static)
        if resize is not None:
            # Resizing works in float; conversion comes first so the result stays in [0, 1].
            image = tf.image.resize(to_float(tf, image, tf.float32), resize)
        return image, f[schema.LABEL], f[schema.FILENAME]

    if records is not None:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(records), tf.string))
    elif on_problem is not None:
        ds = _checked_records(tf, files, shuffle, seed, on_problem)
    else:
        names = tf.data.Dataset.from_tensor_slices([str(p) for p in files])
        if shuffle:
            names = names.shuffle(len(files), seed=seed)
        ds = names.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    if limit is not None:
        ds = ds.take(limit)
    if shuffle:
        ds = ds.shuffle(1024, seed=seed)
    # The functions here use tf.cond/tf.case explicitly: AutoGraph has nothing to convert,
    # and skipping it saves about half a second per dataset built.
    plain = tf.autograph.experimental.do_not_convert
    ds = ds.map(plain(parse), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if batch_size is not None:
        ds = ds.batch(batch_size)
    if target != "/CPU:0":
        # Only the integer tensors cross to the GPU; the conversion below then runs there.
        # (On the CPU the copy would be a pure cost: about 40% of the read rate.)
        ds = ds.apply(tf.data.experimental.copy_to_device(target))
    with tf.device(target):
        ds = ds.map(plain(lambda im, lab, fn: (to_float(tf, im, out_dtype), lab, fn)))
        ds = ds.prefetch(tf.data.AUTOTUNE)
    if labels and with_filenames:
        return ds
    if labels:
        return ds.map(plain(lambda im, lab, fn: (im, lab)))
    if with_filenames:
        return ds.map(plain(lambda im, lab, fn: (im, fn)))
    return ds.map(plain(lambda im, lab, fn: im))
