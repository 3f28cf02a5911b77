"""Reading shards back into tensors for training: the one decode path of the project.

``imgrec decode``, ``inspect --preview`` and ``imgrec.dataset`` all go through
``dataset``. Its host part yields integer images (uint8/uint16, as stored; resized on the
host and rounded back to that dtype); conversion to float by ``tf.image.convert_image_dtype``
happens on the target device, so on a GPU only integers cross the bus (a quarter of the
bytes of float32 for uint8).

Shards are read where they are: local files and ``gs://`` by TensorFlow's own reader;
``s3://`` (which TensorFlow 2.16+ no longer reads itself) by imgrec's framing reader
through ``storage``, one stream per shard, several shards at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import schema, storage
from .checks import Problem, check_record
from .deps import import_tf
from .errors import DependencyError, ImgrecError
from .shards import Known, describe, entries, resolve
from .storage import Location
from .tfdecode import Layout, decode_stored, feature_spec, to_float
from .tfrecord import read_records, scan

if TYPE_CHECKING:
    import tensorflow as tf

# URL schemes TensorFlow's file system reads itself (TFRecordDataset); others are streamed.
TF_SCHEMES = ("gs",)


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


def choose_channels(known: Known | None, channels: int | None, batched: bool) -> int | None:
    """The channel count to decode to: as asked, or (None) one that loses nothing when the
    records differ: gray and RGB together become RGB. Mixes with alpha are refused for
    batches, naming the choice to make."""
    if channels is not None:
        if channels not in (1, 3, 4):
            raise ImgrecError(f"channels={channels!r}: use 1, 3 or 4 (or None: as stored)")
        return channels
    if known is None or len(known.channels) < 2:
        return None
    if known.channels <= {1, 3}:
        return 3
    if batched:
        *rest, last = [str(c) for c in sorted(known.channels)]
        listed = f"{', '.join(rest)} and {last}"
        raise ImgrecError(
            f"these images have {listed} channels, which cannot share a batch without"
            " choosing what to do with alpha: pass channels=3 (drop alpha) or channels=4"
            " (add opaque alpha), or read without batch_size"
        )
    return None


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


@dataclass(frozen=True)
class Source:
    """The serialized records to read, and how many there are when the manifests say."""

    records: Any  # a tf.data.Dataset of scalar strings
    count: int | None


def _readable_by_tf(path: Location) -> bool:
    return not isinstance(path, str) or path.split("://", 1)[0] in TF_SCHEMES


def _source(
    tf: Any,
    files: list[Location],
    counts: list[int] | None,
    *,
    shuffle: bool,
    seed: int | None,
    deterministic: bool,
    input_context: Any,
) -> Source:
    """Every record of ``files`` (this replica's part of them, with ``input_context``)."""
    replicas = input_context.num_input_pipelines if input_context is not None else 1
    replica = input_context.input_pipeline_id if input_context is not None else 0
    by_file = replicas > 1 and len(files) >= replicas
    by_record = replicas > 1 and not by_file
    if by_file:  # whole shards per replica: each reads only its own files
        files = files[replica::replicas]
        counts = counts[replica::replicas] if counts is not None else None
    total = sum(counts) if counts is not None else None
    if by_record:
        # Every replica walks the same records in the same order and keeps every n-th:
        # the file order must then be the same everywhere, whatever the seed.
        seed = 0 if seed is None else seed
        deterministic = True
        if total is not None:
            total = len(range(replica, total, replicas))
    names = tf.data.Dataset.from_tensor_slices([str(p) for p in files])
    if shuffle:
        names = names.shuffle(len(files), seed=seed)
    streamed = not all(_readable_by_tf(p) for p in files)
    records = names.interleave(
        _streamer(tf) if streamed else tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if by_record:
        records = records.shard(replicas, replica)
    return Source(records, total)


def _streamer(tf: Any) -> Callable[[Any], Any]:
    """Records of one shard (by name) through imgrec's own framing reader and ``storage``:
    for URLs TensorFlow cannot open. Both CRCs are checked, as TensorFlow's reader does."""

    def open_one(name: Any) -> Any:
        def records(path: bytes) -> Iterator[bytes]:
            for _offset, data in read_records(storage.parse(path.decode())):
                yield data

        return tf.data.Dataset.from_generator(
            records, args=(name,), output_signature=tf.TensorSpec([], tf.string)
        )

    plain: Callable[[Any], Any] = tf.autograph.experimental.do_not_convert(open_one)
    return plain


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
                    _rec, issue = check_record(frame.data, decode=True)
                if issue is not None:
                    on_problem(Problem(str(path), frame.index, frame.offset, issue))
                    continue
                assert frame.data is not None
                yield frame.data

    return tf.data.Dataset.from_generator(records, output_signature=tf.TensorSpec([], tf.string))


def dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    dtype: Any = "float32",
    device: str = "auto",
    labels: bool = True,
    with_filenames: bool = False,
    deterministic: bool = True,
    limit: int | None = None,
    split: str | None = None,
    input_context: Any = None,
    on_problem: Callable[[Problem], None] | None = None,
    records: Sequence[bytes] | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label)`` (or images alone with ``labels=False``).

    ``paths`` are dataset folders, shard files or globs, local or ``gs://``/``s3://``.
    Images are HWC tensors of ``dtype`` in [0, 1] (through ``tf.image.convert_image_dtype``;
    float sources keep their values). ``with_filenames`` adds the record's filename as a last
    element. Batching images of different sizes needs ``resize=(height, width)``. ``split``
    reads one split of a dataset packed with ``--split``.

    ``channels`` (1, 3 or 4) converts every image as TensorFlow's decoders do; left None,
    images keep their channels, except that gray and colour images read together all become
    RGB (nothing is lost), so that any photo folder batches.

    ``input_context`` (the ``tf.distribute.InputContext`` that
    ``strategy.distribute_datasets_from_function`` passes) reads this replica's part: whole
    shards when there are at least as many shards as replicas, every n-th record otherwise.
    Together the replicas read every record once per epoch.

    With ``on_problem``, every record is checked before TensorFlow sees it (both CRCs, the
    schema, the encoded header against the declared shape, and a full decode of the image
    data with Pillow): a damaged or malformed record is passed to ``on_problem`` (naming
    shard, record and offset) and left out, and the rest still decode. Should TensorFlow
    still fail on a record that passed, that record is dropped rather than stopping the
    pipeline. Without ``on_problem``, records stream straight from the shards (fastest; a
    damaged shard then stops iteration with TensorFlow's error).

    ``records`` decodes these serialized records (taken from ``paths``) instead of reading
    the shards: the preview uses it to show chosen records through this same path.
    """
    tf = import_tf()
    host = host_dataset(paths, batch_size=batch_size, shuffle=shuffle, seed=seed,
                        resize=resize, channels=channels, dtype=dtype, deterministic=deterministic,
                        limit=limit, split=split, input_context=input_context,
                        on_problem=on_problem, records=records)  # fmt: skip
    out_dtype = tf.as_dtype(dtype)
    target = pick_device(device)
    plain = tf.autograph.experimental.do_not_convert
    ds = host
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


def host_dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    dtype: Any = "float32",
    deterministic: bool = True,
    limit: int | None = None,
    split: str | None = None,
    input_context: Any = None,
    on_problem: Callable[[Problem], None] | None = None,
    records: Sequence[bytes] | None = None,
) -> tf.data.Dataset:
    """The host part of ``dataset``: ``(image, label, filename)`` with images still in their
    stored integer dtype (uint8 or uint16; float only where a dataset mixes 8- and 16-bit
    images, or stores floats). This is what crosses to the device."""
    tf = import_tf()
    files = resolve(paths, split)
    known = describe(files)
    want = choose_channels(known, channels, batch_size is not None)
    if batch_size is not None:
        _check_batchable(known, resize)
    out_dtype = tf.as_dtype(dtype)
    # Without a manifest the dtypes are unknown: every one is handled.
    kinds = sorted(known.dtypes if known else schema.DTYPES)
    spec = feature_spec(tf)
    layout = Layout() if known is None else Layout(known.formats, known.channels, known.oriented)
    if len(kinds) == 1:
        stored = tf.as_dtype(kinds[0])

        def decode(f: Any) -> Any:
            return decode_stored(tf, f, stored, layout, want)

    else:
        stored = out_dtype

        # Mixed dtypes (8- and 16-bit images in one dataset) cannot share one integer
        # tensor type, so these are converted to float on the host instead.
        def decode(f: Any) -> Any:
            branches = [
                (
                    lambda k=k: to_float(
                        tf, decode_stored(tf, f, tf.as_dtype(k), layout, want), out_dtype
                    )
                )  # fmt: skip
                for k in kinds
            ]
            index = tf.argmax(tf.cast(tf.equal(f[schema.DTYPE], kinds), tf.int32))
            return tf.switch_case(tf.cast(index, tf.int32), branches)

    # Static shapes where the manifest knows them, so Keras sees (H, W, C), not (?, ?, ?).
    static: list[int | None] = [None, None, want]
    if known is not None and known.height is not None and known.width is not None:
        (h0, h1), (w0, w1) = known.height, known.width
        static[:2] = [h0 if h0 == h1 else None, w0 if w0 == w1 else None]
        if want is None and len(known.channels) == 1:
            static[2] = next(iter(known.channels))
    if resize is not None:
        static[:2] = list(resize)

    def parse(serialized: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = decode(f)
        if resize is not None:
            image = _resize(tf, image, resize)
        return tf.ensure_shape(image, static), f[schema.LABEL], f[schema.FILENAME]

    count: int | None = None
    if records is not None:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(records), tf.string))
    elif on_problem is not None:
        ds = _checked_records(tf, files, shuffle, seed, on_problem)
    else:
        listed = entries(files)
        counts = [e.records for _, e in listed] if listed is not None else None
        source = _source(tf, files, counts, shuffle=shuffle, seed=seed,
                         deterministic=deterministic, input_context=input_context)  # fmt: skip
        ds, count = source.records, source.count
    if limit is not None:
        ds = ds.take(limit)
        count = min(limit, count) if count is not None else None
    if count is not None:
        # Known to Keras: model.fit shows a total, and len(ds) works.
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    if shuffle:
        ds = ds.shuffle(1024, seed=seed)
    # The functions here use tf.cond/tf.case explicitly: AutoGraph has nothing to convert,
    # and skipping it saves about half a second per dataset built.
    plain = tf.autograph.experimental.do_not_convert
    ds = ds.map(plain(parse), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if on_problem is not None:
        ds = ds.ignore_errors()
    if batch_size is not None:
        ds = ds.batch(batch_size)
    return ds


def _resize(tf: Any, image: Any, size: tuple[int, int]) -> Any:
    """Resize on the host and round back to the image's dtype: integers stay integers (a
    quarter of float32's bytes to move), at the cost of one rounding (half a level)."""
    resized = tf.image.resize(tf.cast(image, tf.float32), size)
    if not image.dtype.is_integer:
        return tf.cast(resized, image.dtype)
    return tf.saturate_cast(tf.round(resized), image.dtype)
