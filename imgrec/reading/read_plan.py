"""The read plan: what the manifests let a read leave out of the graph, decided once per
dataset before any TensorFlow op is built (the channels to decode to, whether a resize or a
channel conversion is needed at all, the static shape, and raw records that can be decoded a
batch at a time); and the up-front refusals of readings that cannot work, each with its way
out.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ImgrecError
from ..format import schema
from .crops import CROPS
from .graph import Layout
from .paths import Known


@dataclass(frozen=True)
class ReadPlan:
    """What a read decodes, and what it leaves out of the graph."""

    kinds: list[str]  # the stored dtypes to decode
    layout: Layout
    scale_to: tuple[int, int] | None  # None: no resize (none asked, or every record's size)
    convert_to: int | None  # None: no channel conversion (none asked, or every record's)
    static: list[int | None]  # the shape every decoded image has
    raw_shape: tuple[int, int, int] | None  # raw records of this one shape: batch-decoded
    out_dtype: Any  # the float dtype asked for (mixed 8/16-bit datasets convert on the host)


def plan_read(
    known: Known | None,
    batch_size: int | None,
    resize: tuple[int, int] | None,
    crop: str | None,
    channels: int | None,
    dtype: Any,
) -> ReadPlan:
    """The plan for reading records the manifests describe as ``known`` (None: no manifest,
    so every format, dtype and size is handled)."""
    want = choose_channels(known, channels, batch_size is not None)
    if batch_size is not None:
        _check_batchable(known, resize)
    # Without a manifest the dtypes are unknown: every one is handled. Manifests of no
    # records name no dtype: the graph, which never runs, is the cheapest (raw uint8).
    kinds = sorted(known.dtypes if known else schema.DTYPES) or ["uint8"]
    layout = Layout()
    if known is not None and not known.dtypes:
        layout = Layout(frozenset({"raw"}), None, False)
    fixed = _fixed_size(known)
    if known is not None and known.dtypes:
        sizes = None
        if known.height is not None and known.width is not None:
            sizes = ((known.height[0], known.width[0]), (known.height[1], known.width[1]))
        layout = Layout(known.formats, known.channels, known.oriented, sizes)
    # Work the manifest shows is not needed is left out of the graph: a resize to the size
    # every record has, a channel conversion to the channels every record has.
    same = resize is not None and fixed == tuple(resize)
    scale_to = None if crop is None and same else resize
    convert_to = None if known is not None and known.channels == {want} else want
    return ReadPlan(
        kinds,
        layout,
        scale_to,
        convert_to,
        _static_shape(known, want, resize),
        _raw_shape(known, fixed, convert_to, scale_to, crop),
        dtype,
    )


def choose_channels(known: Known | None, channels: int | None, batched: bool) -> int | None:
    """The channel count to decode to: as asked, or (None) each record's own. Only a batch
    needs one count for records that differ: gray and RGB together become RGB, and mixes
    with alpha are refused, naming the choice to make. Unbatched, each keeps its own."""
    if channels is not None:
        if channels not in (1, 3, 4):
            raise ImgrecError(f"channels={channels!r}: use 1, 3 or 4 (or None: as stored)")
        return channels
    if not batched or known is None or len(known.channels) < 2:
        return None
    if known.channels <= {1, 3}:
        return 3
    *rest, last = [str(c) for c in sorted(known.channels)]
    listed = f"{', '.join(rest)} and {last}"
    raise ImgrecError(
        f"these images have {listed} channels, which cannot share a batch without"
        " choosing what to do with alpha: pass channels=3 (drop alpha) or channels=4"
        " (add opaque alpha), or read without batch_size"
    )


def _check_batchable(known: Known | None, resize: tuple[int, int] | None) -> None:
    """Refuse, up front and with the way out, a batch TensorFlow could not stack."""
    if known is None or known.height is None or known.width is None or resize is not None:
        return  # shards without a manifest: TensorFlow reports a mismatch when it meets one
    (h0, h1), (w0, w1) = known.height, known.width
    if h0 != h1 or w0 != w1:
        raise ImgrecError(
            f"images range from {h0}x{w0} to {h1}x{w1} (HxW); pass resize=(height, width)"
            " to batch them, pack with --resize, or read without batch_size"
        )


def check_reading(
    resize: tuple[int, int] | None,
    crop: str | None,
    cache: bool | str,
    batch_size: int | None = None,
    limit: int | None = None,
) -> None:
    """Refuse, when the dataset is made, arguments TensorFlow would take only to fail (or
    loop) on the first record."""
    if resize is not None and not (
        isinstance(resize, tuple | list) and len(resize) == 2 and all(_count(v, 1) for v in resize)
    ):
        raise ImgrecError(f"resize={resize!r}: give (height, width), two whole numbers >= 1")
    if batch_size is not None and not _count(batch_size, 1):
        raise ImgrecError(f"batch_size={batch_size!r}: give a whole number >= 1 (or None)")
    if limit is not None and not _count(limit, 0):
        raise ImgrecError(f"limit={limit!r}: give a whole number >= 0 (or None: every record)")
    if crop is not None and crop not in CROPS:
        raise ImgrecError(f"crop={crop!r}: use one of {', '.join(CROPS)} (or None)")
    if crop is not None and resize is None:
        raise ImgrecError(f"crop={crop!r} needs resize=(height, width): the size to crop to")
    if crop == "random" and cache:
        raise ImgrecError(
            "cache keeps decoded images, but a random crop must be drawn anew each epoch:"
            " use crop='random' without cache (or cache with crop='center' or no crop)"
        )
    if isinstance(cache, str | os.PathLike) and "://" not in str(cache):
        folder = Path(cache).parent  # TensorFlow writes PATH_0.lockfile and PATH.index there
        if not folder.is_dir():
            raise ImgrecError(
                f"cache={str(cache)!r}: the folder {folder} does not exist; create it, or give"
                " a path in a folder that does (cache files start with the path's name)"
            )


def annotated_columns(known: Known | None, annotations: bool | None) -> dict[str, str] | None:
    """The per-image columns when the read gives annotations (None: plain images):
    ``annotations`` None follows the manifests, False never, True requires them."""
    columns = known.columns if known is not None else None
    if annotations is True and columns is None:
        raise ImgrecError(
            "annotations=True, but these shards' manifests list no annotations (pack with"
            " --annotations, or read them without)"
        )
    if annotations is False or columns is None:
        return None
    return columns


def _count(value: object, least: int) -> bool:
    """Whether ``value`` is a whole number (NumPy's too; not a bool) of at least ``least``."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return whole and int(value) >= least  # type: ignore[call-overload]


def _fixed_size(known: Known | None) -> tuple[int, int] | None:
    """(height, width) when the manifests say every record has it."""
    if known is None or known.height is None or known.width is None:
        return None
    (h0, h1), (w0, w1) = known.height, known.width
    return (h0, w0) if h0 == h1 and w0 == w1 else None


def _raw_shape(
    known: Known | None,
    fixed: tuple[int, int] | None,
    convert_to: int | None,
    scale_to: tuple[int, int] | None,
    crop: str | None,
) -> tuple[int, int, int] | None:
    """The one (H, W, C) of every record, when all are raw pixels of one dtype and shape
    that are read as stored (no resize, crop, channel change or orientation)."""
    if known is None or fixed is None or known.formats != {"raw"} or len(known.dtypes) != 1:
        return None
    if len(known.channels) != 1 or known.oriented or convert_to or scale_to or crop:
        return None
    return (*fixed, next(iter(known.channels)))


def _static_shape(
    known: Known | None, want: int | None, resize: tuple[int, int] | None
) -> list[int | None]:
    """Static shapes where the manifest knows them, so Keras sees (H, W, C), not (?, ?, ?)."""
    static: list[int | None] = [None, None, want]
    if known is not None and known.height is not None and known.width is not None:
        (h0, h1), (w0, w1) = known.height, known.width
        static[:2] = [h0 if h0 == h1 else None, w0 if w0 == w1 else None]
        if want is None and len(known.channels) == 1:
            static[2] = next(iter(known.channels))
    if resize is not None:
        static[:2] = list(resize)
    return static
