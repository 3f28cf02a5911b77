"""The per-record decode graph: a parsed record into an HWC integer tensor (its stored
dtype), oriented, with the channels asked for; and the one integer -> float conversion.

Branches are left out where the manifests rule them out (``Layout``): every branch in a
``tf.data`` map costs on every image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import schema


def feature_spec(tf: Any) -> dict[str, Any]:
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


def decode_stored(
    tf: Any, f: dict[str, Any], dtype: Any, layout: Layout = Layout(), channels: int | None = None
) -> Any:
    """Decode one parsed record into an HWC tensor of its stored dtype; with ``channels``,
    converted to that many channels as TensorFlow's decoders convert (gray repeated to RGB,
    RGB to gray by luma, alpha added opaque or dropped)."""
    shape = f[schema.SHAPE]
    declared = shape[0] > 0  # records from other tools may have no image/shape
    stored = tf.where(declared, shape[-1], f[schema.CHANNELS])

    def raw() -> Any:
        image = tf.reshape(tf.io.decode_raw(f[schema.RAW], dtype), shape)
        if channels is None:
            return image
        branches = [
            (lambda c=c: convert_channels(tf, tf.ensure_shape(image, [None, None, c]), c, channels))
            for c in (1, 3, 4)
        ]
        index = tf.argmax(tf.cast(tf.equal(tf.constant([1, 3, 4], tf.int64), stored), tf.int32))
        return tf.switch_case(tf.cast(index, tf.int32), branches)

    def by_channels(decode: Any, choices: tuple[int, ...]) -> Any:
        # The decoders take channels as an attribute: asked for, it is the one branch;
        # otherwise one branch per value that can occur, and an unexpected count falls back
        # to 0 (as stored), caught by the shape checks after.
        if channels is not None:
            return decode(channels)
        if layout.channels is not None and len(layout.channels) == 1:
            (only,) = layout.channels
            if only in choices:
                return decode(only)
        index = tf.argmax(tf.cast(tf.equal(tf.constant(choices, tf.int64), stored), tf.int32))
        branches = [(lambda c=c: decode(c)) for c in choices]
        return tf.switch_case(tf.cast(index, tf.int32), branches)

    def jpeg() -> Any:
        # INTEGER_ACCURATE is the IDCT Pillow uses: the two then agree exactly, where TF's
        # default (INTEGER_FAST) is off by up to about 6 levels. JPEG has no alpha: 4
        # channels are 3 with an opaque alpha added.
        def decode(c: int) -> Any:
            image = tf.io.decode_jpeg(
                f[schema.ENCODED], channels=min(c, 3), dct_method="INTEGER_ACCURATE"
            )
            return convert_channels(tf, image, 3, 4) if c == 4 else image

        return by_channels(decode, (0, 1, 3))

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
    return tf.ensure_shape(image, [None, None, channels])


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


def convert_channels(tf: Any, image: Any, have: int, want: int) -> Any:
    """``have`` channels into ``want``: gray repeated to RGB, RGB to gray by luma (ITU-R
    601, as tf.image.rgb_to_grayscale), alpha dropped or added opaque (the dtype's top)."""
    if have == want:
        return image
    if have == 4:
        image, have = image[..., :3], 3
    if have == 1 and want >= 3:
        image = tf.image.grayscale_to_rgb(image)
    elif have == 3 and want == 1:
        image = tf.image.rgb_to_grayscale(image)
    if want == 4:
        top = image.dtype.max if image.dtype.is_integer else 1
        image = tf.concat([image, tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0),
                                          tf.cast(top, image.dtype))], -1)  # fmt: skip
    return image


def to_float(tf: Any, image: Any, dtype: Any) -> Any:
    """The only integer -> float conversion: uint8 / 255, uint16 / 65535, floats unchanged."""
    return tf.image.convert_image_dtype(image, dtype)
