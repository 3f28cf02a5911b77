"""The per-record decode graph: a parsed record into an HWC integer tensor (its stored
dtype), oriented, with the channels asked for; and the one integer -> float conversion.

Branches are left out where the manifests rule them out (``Layout``): every branch in a
``tf.data`` map costs on every image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..format import schema


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
    # The smallest and the largest (height, width) of the records, when known: a JPEG's
    # DCT scale is then decided once if both ends get the same one (it grows with size).
    sizes: tuple[tuple[int, int], tuple[int, int]] | None = None


@dataclass(frozen=True)
class Geometry:
    """Where the decoder can save work: the size the image is resized to next (a JPEG is
    then decoded at the largest DCT scale, 1/2, 1/4 or 1/8, that is not smaller), or a crop
    (a JPEG then decodes only the crop window)."""

    at_least: tuple[int, int] | None = None  # (height, width)
    window: Callable[[Any], Any] | None = None  # decoded [height, width] -> [y, x, h, w]


RATIOS = (8, 4, 2, 1)
WEIGHTS_601 = (19595, 38470, 7471)  # Pillow's luma weights, in 1/65536


def jpeg_ratio(size: tuple[int, int], at_least: tuple[int, int]) -> int:
    """The largest DCT scale at which an image of ``size`` still covers ``at_least``."""
    (h, w), (th, tw) = size, at_least
    return next(r for r in RATIOS if r == 1 or -(-h // r) >= th and -(-w // r) >= tw)


def decode_stored(
    tf: Any,
    f: dict[str, Any],
    dtype: Any,
    layout: Layout = Layout(),
    channels: int | None = None,
    geometry: Geometry = Geometry(),
) -> Any:
    """Decode one parsed record into an HWC tensor of its stored dtype; with ``channels``,
    converted to that many channels by the pixel rules ``convert_channels`` states (the
    same as pack's: gray repeated to RGB, RGB to gray by Pillow's luma, alpha added opaque
    or dropped); cropped to ``geometry.window``."""
    decoder = _Decoder(tf, f, dtype, layout, channels, geometry)
    image = decoder.by_format()
    if layout.oriented:
        image = apply_orientation(tf, image, f[schema.ORIENTATION])
    # No per-record check that the decoded shape is the declared one: an assertion in the
    # map costs about a quarter of the read rate. Raw records are held to their shape by the
    # reshape; sizes the manifest knows are enforced by ensure_shape in dataset(); and the
    # checked path (on_problem: imgrec decode, verify) compares every header with its shape.
    return tf.ensure_shape(image, [None, None, channels])


@dataclass(frozen=True)
class _Decoder:
    """The decode of one parsed record, one method per stored format."""

    tf: Any
    f: dict[str, Any]
    dtype: Any
    layout: Layout
    channels: int | None
    geometry: Geometry

    @property
    def stored(self) -> Any:
        """The record's stored channel count (0: not declared, as other tools' records)."""
        shape = self.f[schema.SHAPE]
        declared = shape[0] > 0  # records from other tools may have no image/shape
        return self.tf.where(declared, shape[-1], self.f[schema.CHANNELS])

    def by_format(self) -> Any:
        """The decoders the layout leaves possible; one of them, or a case on the format."""
        tf = self.tf
        decoders = {"raw": self.cropped(self.raw)}
        if self.dtype in (tf.uint8, tf.uint16):
            decoders["png"] = self.cropped(self.png)
        if self.dtype == tf.uint8:
            decoders["jpeg"] = self.jpeg
        formats = self.layout.formats
        present = [k for k in decoders if formats is None or k in formats]
        if self._one_decoder_for_jpeg_and_png():
            # TensorFlow's decode_jpeg decodes a PNG by its content, to the same pixels as
            # decode_png at these channel counts: one decoder, no per-record format case.
            return decoders["jpeg"]()
        if formats is not None and len(present) == 1 and set(formats) <= set(present):
            return decoders[present[0]]()
        fmt = tf.strings.lower(self.f[schema.FORMAT])
        other = self.cropped(self.other) if self.dtype in (tf.uint8, tf.uint16) else None
        return tf.case([(fmt == k, decoders[k]) for k in present], default=other or decoders["raw"])

    def _one_decoder_for_jpeg_and_png(self) -> bool:
        layout, channels = self.layout, self.channels
        one_kind = channels if channels is not None else _only(layout.channels)
        to_gray = channels == 1 and layout.channels != frozenset({1})  # by the luma rule
        return (
            layout.formats == frozenset({"jpeg", "png"})
            and self.dtype == self.tf.uint8
            and one_kind in (1, 3)
            and not to_gray
            and self.geometry.window is None
        )

    def raw(self) -> Any:
        tf, channels = self.tf, self.channels
        shape = self.f[schema.SHAPE]
        image = tf.reshape(tf.io.decode_raw(self.f[schema.RAW], self.dtype), shape)
        if channels is None:
            return image
        branches = [
            (lambda c=c: convert_channels(tf, tf.ensure_shape(image, [None, None, c]), c, channels))
            for c in (1, 3, 4)
        ]
        return tf.switch_case(self._index_of(self.stored, (1, 3, 4)), branches)

    def _index_of(self, value: Any, choices: tuple[int, ...]) -> Any:
        """The index of ``value`` in ``choices`` (0 when it is none of them)."""
        tf = self.tf
        found = tf.equal(tf.constant(choices, tf.int64), value)
        return tf.cast(tf.argmax(tf.cast(found, tf.int32)), tf.int32)

    def by_channels(self, decode: Callable[[int], Any], choices: tuple[int, ...]) -> Any:
        """The decoders take channels as an attribute: asked for, it is the one branch;
        otherwise one branch per value that can occur, and an unexpected count falls back
        to 0 (as stored), caught by the shape checks after."""
        if self.channels is not None:
            return decode(self.channels)
        only = _only(self.layout.channels)
        if only is not None and only in choices:
            return decode(only)
        branches = [(lambda c=c: decode(c)) for c in choices]
        return self.tf.switch_case(self._index_of(self.stored, choices), branches)

    def gray_by_luma(self, decode: Callable[[int], Any]) -> Any:
        """One channel: a gray record's own; a colour one's decoded as RGB, then to gray by
        the luma rule (a decoder's own conversion, libjpeg's or libpng's, differs)."""
        tf = self.tf
        return tf.cond(
            tf.equal(self.stored, 1),
            lambda: decode(1),
            lambda: convert_channels(tf, decode(3), 3, 1),
        )

    def jpeg(self) -> Any:
        # JPEG has no alpha: 4 channels are 3 with an opaque alpha added.
        tf, f, layout, geometry = self.tf, self.f, self.layout, self.geometry

        def decode(c: int) -> Any:
            if c == 1 and layout.channels != frozenset({1}):
                return self.gray_by_luma(lambda k: _decode_jpeg(tf, f, k, layout, geometry))
            image = _decode_jpeg(tf, f, min(c, 3), layout, geometry)
            return convert_channels(tf, image, 3, 4) if c == 4 else image

        return self.by_channels(decode, (0, 1, 3))

    def png(self) -> Any:
        tf, data, dtype = self.tf, self.f[schema.ENCODED], self.dtype

        def at(c: int) -> Any:
            return tf.io.decode_png(data, channels=c, dtype=dtype)

        def decode(c: int) -> Any:
            if c == 1 and self.layout.channels != frozenset({1}):
                return self.gray_by_luma(at)
            if c != 4:
                return at(c)
            # Alpha that TensorFlow adds to a PNG without one is the bit depth's top (1 for
            # a bilevel PNG, 3 for a 2-bit palette), not opaque: add it here instead.
            return tf.cond(
                tf.equal(self.stored, 4),
                lambda: at(4),
                lambda: convert_channels(tf, at(3), 3, 4),
            )

        return self.by_channels(decode, (0, 1, 3, 4))

    def other(self) -> Any:  # other tools' records: GIF, BMP, ... by content
        tf, data, dtype = self.tf, self.f[schema.ENCODED], self.dtype
        return self.by_channels(
            lambda c: tf.io.decode_image(data, channels=c, dtype=dtype, expand_animations=False),
            (0, 1, 3, 4),
        )

    def cropped(self, decode: Callable[[], Any]) -> Callable[[], Any]:
        window = self.geometry.window
        if window is None:
            return decode

        def crop() -> Any:
            image = decode()
            y, x, h, w = self.tf.unstack(window(self.tf.shape(image)[:2]))
            return image[y : y + h, x : x + w]

        return crop


def _only(values: frozenset[int] | None) -> int | None:
    return next(iter(values)) if values is not None and len(values) == 1 else None


def _decode_jpeg(
    tf: Any, f: dict[str, Any], channels: int, layout: Layout, geometry: Geometry
) -> Any:
    """A JPEG decoded with the least work the geometry allows. INTEGER_ACCURATE is the IDCT
    Pillow uses: the two then agree exactly at full scale, where TF's default (INTEGER_FAST)
    is off by up to about 6 levels."""
    data = f[schema.ENCODED]

    def at(ratio: int) -> Any:
        return tf.io.decode_jpeg(
            data, channels=channels, ratio=ratio, dct_method="INTEGER_ACCURATE"
        )

    if geometry.window is not None:
        return _decode_window(tf, data, channels, layout, geometry)
    if geometry.at_least is None:
        return at(1)
    if layout.sizes is not None:
        low, high = (jpeg_ratio(size, geometry.at_least) for size in layout.sizes)
        if low == high:  # every record gets this scale: decided once
            return at(low)
    # Per record, from its declared (oriented) size: the scale applies to both sides alike,
    # so orientation does not change which scale fits. No declared size: full scale.
    h, w = f[schema.SHAPE][0], f[schema.SHAPE][1]
    th, tw = geometry.at_least
    fits = [tf.logical_and((h + r - 1) // r >= th, (w + r - 1) // r >= tw) for r in RATIOS[:-1]]
    fits.append(tf.constant(True))  # full scale when nothing smaller covers the target
    index = tf.argmax(tf.cast(tf.stack(fits), tf.int32))  # the first (largest) that fits
    return tf.switch_case(tf.cast(index, tf.int32), [(lambda r=r: at(r)) for r in RATIOS])


def decode_raw_batch(
    tf: Any, serialized: Any, dtype: Any, shape: tuple[int, int, int]
) -> tuple[Any, Any, Any]:
    """A batch of serialized raw records that all hold ``shape`` pixels of ``dtype`` (as
    the manifest says) into ``(images [n, H, W, C], labels, filenames)``: one
    ``parse_example`` and one ``decode_raw`` for the batch, where a per-record map costs
    about a quarter of the rate. A record of another size fails the batch's decode_raw."""
    s = tf.string
    spec = {
        schema.RAW: tf.io.FixedLenFeature([], s, default_value=""),
        schema.LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        schema.FILENAME: tf.io.FixedLenFeature([], s, default_value=""),
    }
    f = tf.io.parse_example(serialized, spec)
    images = tf.reshape(tf.io.decode_raw(f[schema.RAW], dtype), [-1, *shape])
    return images, f[schema.LABEL], f[schema.FILENAME]


def _decode_window(tf: Any, data: Any, channels: int, layout: Layout, geometry: Geometry) -> Any:
    """Only the crop window of a JPEG, at the largest DCT scale at which the window still
    covers the size it is resized to next (each side at least the larger target side, so
    that orientation cannot matter): a window of a large photo is decoded at 1/2 to 1/8.

    The decoder upsamples the chroma of a subsampled JPEG (4:2:2, 4:2:0) as if the window's
    left and right edges were the image's: its first and last columns came out up to 73
    levels off the image's pixels there. One more column is decoded on each side (where
    the image has one) and cut off: then the window's pixels are the full decode's, exactly
    (7,200 random windows of 600 JPEGs, every subsampling and scale, progressive too)."""
    assert geometry.window is not None
    shape = tf.image.extract_jpeg_shape(data)
    window = geometry.window(shape[:2])  # full scale [y, x, h, w]

    def at(ratio: int) -> Any:
        # decode_and_crop_jpeg takes the window in the coordinates of the scaled image.
        y, x, h, w = tf.unstack(window if ratio == 1 else tf.maximum(window // ratio, [0, 0, 1, 1]))
        width = (shape[1] + ratio - 1) // ratio  # the scaled image's (libjpeg rounds up)
        left = tf.minimum(x, 1)
        right = tf.minimum(width - x - w, 1)
        wider = tf.stack([y, x - left, h, w + left + right])
        image = tf.io.decode_and_crop_jpeg(
            data, wider, channels=channels, ratio=ratio, dct_method="INTEGER_ACCURATE"
        )
        return image[:, left : left + w]

    if geometry.at_least is None:
        return at(1)
    side = max(geometry.at_least)
    if layout.sizes is not None and jpeg_ratio(layout.sizes[1], (side, side)) == 1:
        return at(1)  # no record is large enough for a smaller scale: decided once
    shortest = tf.minimum(window[2], window[3])
    fits = [shortest // r >= side for r in RATIOS[:-1]]
    fits.append(tf.constant(True))
    index = tf.argmax(tf.cast(tf.stack(fits), tf.int32))  # the first (largest) that fits
    return tf.switch_case(tf.cast(index, tf.int32), [(lambda r=r: at(r)) for r in RATIOS])


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
    """``have`` channels into ``want``, by the rules pack's ``pixels.shape_channels`` follows:
    gray repeated to RGB; RGB to gray by Pillow's ITU-R 601-2 luma in its fixed-point form
    (``(19595 R + 38470 G + 7471 B + 0x8000) >> 16`` for integers, the same weights for
    floats); alpha dropped, or added opaque (the dtype's top, 1.0 for floats)."""
    if have == want:
        return image
    if have == 4:
        image, have = image[..., :3], 3
    if have == 1 and want >= 3:
        image = tf.concat([image, image, image], -1)  # grayscale_to_rgb's Tile has no uint16
    elif have == 3 and want == 1:
        image = luma(tf, image)
    if want == 4:
        top = image.dtype.max if image.dtype.is_integer else 1
        image = tf.concat([image, tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0),
                                          tf.cast(top, image.dtype))], -1)  # fmt: skip
    return image


def luma(tf: Any, rgb: Any) -> Any:
    """RGB (HWC) to one gray channel, exactly as Pillow's ``convert("L")`` computes it."""
    wr, wg, wb = WEIGHTS_601
    if rgb.dtype.is_integer:
        r, g, b = tf.unstack(tf.cast(rgb, tf.int64), axis=-1)
        y = tf.bitwise.right_shift(r * wr + g * wg + b * wb + 0x8000, 16)
        return tf.cast(y, rgb.dtype)[..., None]
    r, g, b = tf.unstack(rgb, axis=-1)
    return ((r * wr + g * wg + b * wb) / 65536)[..., None]


def resize_rounded(tf: Any, image: Any, size: tuple[int, int]) -> Any:
    """Resize on the host and round back to the image's dtype: integers stay integers (a
    quarter of float32's bytes to move), at the cost of one rounding (half a level)."""
    resized = tf.image.resize(tf.cast(image, tf.float32), size)
    if not image.dtype.is_integer:
        return tf.cast(resized, image.dtype)
    return tf.saturate_cast(tf.round(resized), image.dtype)


def to_float(tf: Any, image: Any, dtype: Any) -> Any:
    """The only integer -> float conversion: uint8 / 255, uint16 / 65535, floats unchanged."""
    return tf.image.convert_image_dtype(image, dtype)
