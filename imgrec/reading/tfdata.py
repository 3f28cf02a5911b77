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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.deps import import_tf
from ..core.errors import DependencyError, ImgrecError
from ..core.storage import Location
from ..format import schema
from ..format.record_check import Problem
from . import objects
from .crops import window_function
from .graph import Geometry, decode_raw_batch, decode_stored, feature_spec, resize_rounded, to_float
from .objects import padding
from .paths import describe, entries, resolve
from .read_plan import ReadPlan, annotated_columns, check_reading, plan_read
from .sources import Tally, checked_records, source

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


def dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    resize: tuple[int, int] | None = None,
    crop: str | None = None,
    channels: int | None = None,
    cache: bool | str = False,
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
    annotations: bool | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label)`` (or images alone with ``labels=False``).

    A dataset packed with annotations (``--annotations``, ``metadata.jsonl``) gives a dict
    per example instead: ``image``, ``label``, ``bounding_boxes``, ``objects``, ``fields``
    (and ``filename``), described in ``reading/objects.py`` and docs/annotations.md; boxes
    are fractions of the image, so ``resize`` leaves them right, and crops and flips move
    them with the pixels. ``annotations=False``
    reads such a dataset as plain images; ``True`` requires annotations.

    ``paths`` are dataset folders, shard files or globs, local or ``gs://``/``s3://``.
    Images are HWC tensors of ``dtype`` in [0, 1] (through ``tf.image.convert_image_dtype``;
    float sources keep their values). ``with_filenames`` adds the record's filename as a last
    element. Batching images of different sizes needs ``resize=(height, width)``. ``split``
    reads one split of a dataset packed with ``--split``. ``limit`` reads the first
    ``limit`` records of the unshuffled read, the same ones every epoch (with ``shuffle``,
    in a new order each epoch; cached or not).

    ``resize`` is bilinear, on the host, rounded back to the stored dtype; a JPEG at least
    twice the size in both sides is decoded at a reduced DCT scale (1/2, 1/4 or 1/8, never
    below the size asked for), which is both faster and an antialiased reduction.
    ``crop="random"`` draws the standard training crop (8% to 100% of the area, aspect 3/4
    to 4/3; then resize and a random left-right flip), ``crop="center"`` the evaluation
    crop (the centred square of the short side times size / (size + 32)); a JPEG is then
    decoded inside the window only, at a reduced DCT scale where the window is at least
    twice the size (large photos). Crops are stateless: the same ``seed`` gives the same
    crops, and each epoch draws new ones. Raw pixels all of one size (as the manifest
    says) are parsed and decoded a batch at a time.

    ``cache=True`` keeps the decoded, resized integer images in memory after the first
    epoch (``cache="PATH"`` in files starting with PATH): later epochs skip reading and
    decoding. uint8 at 224x224x3 is 147 KiB an image: a quarter of a float32 cache.

    ``channels`` (1, 3 or 4) converts every image as TensorFlow's decoders do; left None,
    images keep their stored channels, except that gray and colour images batched together
    all become RGB (nothing is lost), so that any photo folder batches.

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
    host = host_dataset(paths, batch_size=batch_size, shuffle=shuffle, seed=seed,
                        resize=resize, crop=crop, channels=channels, cache=cache, dtype=dtype,
                        deterministic=deterministic, limit=limit, split=split,
                        input_context=input_context, on_problem=on_problem,
                        records=records, annotations=annotations)  # fmt: skip
    return on_device(host, dtype=dtype, device=device, labels=labels,
                     with_filenames=with_filenames)  # fmt: skip


def on_device(host: Any, *, dtype: Any, device: str, labels: bool, with_filenames: bool) -> Any:
    """The device part of ``dataset``: ``host``'s integer images to ``dtype`` on ``device``,
    with the outputs asked for."""
    tf = import_tf()
    out_dtype = tf.as_dtype(dtype)
    target = pick_device(device)
    plain = tf.autograph.experimental.do_not_convert
    ds = host
    if target != "/CPU:0":
        # Only the integer tensors cross to the GPU; the conversion below then runs there.
        # (On the CPU the copy would be a pure cost: about 40% of the read rate.)
        ds = ds.apply(tf.data.experimental.copy_to_device(target))

    def finish(image: Any, label: Any, filename: Any, extra: Any = None) -> Any:
        image = to_float(tf, image, out_dtype)
        if extra is not None:  # annotations: one dict
            named = {"image": image, **({"label": label} if labels else {}), **extra}
            return {**named, "filename": filename} if with_filenames else named
        picked = (image, *([label] if labels else []), *([filename] if with_filenames else []))
        return picked if len(picked) > 1 else image

    with tf.device(target):
        # One map converts and picks the outputs: each stage costs per batch. On the CPU
        # batches convert in parallel; on a GPU the device does the work, in order.
        parallel = tf.data.AUTOTUNE if target == "/CPU:0" else None
        ds = ds.map(plain(finish), num_parallel_calls=parallel)
        return ds.prefetch(tf.data.AUTOTUNE)


def host_dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    resize: tuple[int, int] | None = None,
    crop: str | None = None,
    channels: int | None = None,
    cache: bool | str = False,
    dtype: Any = "float32",
    deterministic: bool = True,
    limit: int | None = None,
    split: str | None = None,
    input_context: Any = None,
    on_problem: Callable[[Problem], None] | None = None,
    records: Sequence[bytes] | None = None,
    tally: Tally | None = None,
    annotations: bool | None = None,
) -> tf.data.Dataset:
    """The host part of ``dataset``: ``(image, label, filename)`` with images still in their
    stored integer dtype (uint8 or uint16; float only where a dataset mixes 8- and 16-bit
    images, or stores floats). This is what crosses to the device. With ``on_problem``,
    ``tally`` counts what the checked read found (``imgrec decode`` reports from it)."""
    tf = import_tf()
    check_reading(resize, crop, cache, batch_size, limit)
    files = resolve(paths, split)
    known = describe(files)
    columns = annotated_columns(known, annotations)
    plan = plan_read(known, batch_size, resize, crop, channels, dtype)
    ds = _serialized(tf, files, records, on_problem, shuffle, seed, deterministic,
                     input_context, limit, tally)  # fmt: skip
    if shuffle and not cache:
        ds = ds.shuffle(1024, seed=seed)  # serialized records: small to hold
    if crop == "random":
        # One stateless seed per record, new each epoch, the same for the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))
    plain = on_problem is None and columns is None  # (boxes differ in count: no fast path)
    if plan.raw_shape is not None and batch_size is not None and plain:
        if not (cache and shuffle):  # (a shuffled cache shuffles images, not batches)
            # Raw pixels of one size: parsed and decoded a batch at a time.
            dtype_, shape = tf.as_dtype(plan.kinds[0]), plan.raw_shape
            ds = ds.batch(batch_size).map(
                _plain(tf, lambda s: decode_raw_batch(tf, s, dtype_, shape)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic,
            )
            return ds.cache("" if cache is True else str(cache)) if cache else ds
    masks = known is not None and known.masks and columns is not None
    points = None
    if known is not None and known.keypoints and columns is not None:
        points = objects.Keypoints.of(known.keypoints)
    instance = known is not None and known.instance_masks and columns is not None
    parse = _plain(tf, _parser(tf, plan, resize, crop, columns, masks, points, instance))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if on_problem is not None:
        ds = ds.ignore_errors()
    if cache:
        # The decoded (and resized) integers: later epochs skip reading and decoding.
        ds = ds.cache("" if cache is True else str(cache))
        if shuffle:
            ds = ds.shuffle(1024, seed=seed)
    if batch_size is not None and columns is not None:  # object lists differ in length
        ds = ds.padded_batch(batch_size, padding_values=padding(tf, ds.element_spec, columns))
    elif batch_size is not None:
        ds = ds.batch(batch_size)
    return ds


def _plain(tf: Any, fn: Callable[..., Any]) -> Any:
    """The functions here use tf.cond/tf.case explicitly: AutoGraph has nothing to convert,
    and skipping it saves about half a second per dataset built."""
    return tf.autograph.experimental.do_not_convert(fn)


def _parser(
    tf: Any,
    plan: ReadPlan,
    resize: tuple[int, int] | None,
    crop: str | None,
    columns: dict[str, str] | None = None,
    masks: bool = False,
    points: objects.Keypoints | None = None,
    instance_masks: bool = False,
) -> Callable[..., Any]:
    """The per-record map: a serialized record to ``(image, label, filename)``, and its
    annotations as a fourth element when ``columns`` is not None (with its mask: ``masks``;
    its keypoints: ``points``; a mask per object: ``instance_masks``)."""
    spec = feature_spec(tf)
    if columns is not None:
        spec.update(objects.spec(tf, columns, masks, points is not None, instance_masks))

    def parse(serialized: Any, crop_seed: Any = None) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        if crop is not None and resize is not None:
            window = window_function(tf, crop, resize, crop_seed)
            geometry = Geometry(at_least=resize, window=window)
        else:
            geometry = Geometry(at_least=plan.scale_to)
        image = _decode(tf, f, plan, geometry)
        if plan.scale_to is not None:
            image = resize_rounded(tf, image, plan.scale_to)
        if crop == "random":
            image = tf.image.stateless_random_flip_left_right(image, tf.reverse(crop_seed, [0]))
        out = (tf.ensure_shape(image, plan.static), f[schema.LABEL], f[schema.FILENAME])
        if columns is None:
            return out
        found = objects.annotations_of(tf, f, columns, points)
        cut = flip = None
        target = resize if crop is not None and resize is not None else plan.scale_to
        if crop is not None and resize is not None:
            # The decode's own window and flip, drawn again from the same stateless seed
            # (stateless_random_flip_left_right flips where this uniform draw is < 0.5).
            size = tf.stack([f[schema.HEIGHT], f[schema.WIDTH]])
            flip = tf.constant(False)
            if crop == "random":
                draw = tf.random.stateless_uniform([], tf.reverse(crop_seed, [0]), 0.0, 1.0)
                flip = draw < 0.5
            cut = window_function(tf, crop, resize, crop_seed)(size)
        if instance_masks:  # moved before the crop drops objects, dropped with them
            found["object_masks"] = objects.object_masks_of(tf, f, target, cut, flip)
        if cut is not None:
            found = objects.cropped(tf, found, cut, size, flip, points)
        if masks:
            found["segmentation_mask"] = objects.mask_of(tf, f, target, cut, flip)
        return (*out, found)

    return parse


def _decode(tf: Any, f: Any, plan: ReadPlan, geometry: Geometry) -> Any:
    def stored(kind: str) -> Any:
        return decode_stored(tf, f, tf.as_dtype(kind), plan.layout, plan.convert_to, geometry)

    if len(plan.kinds) == 1:
        return stored(plan.kinds[0])
    # Mixed dtypes (8- and 16-bit images in one dataset) cannot share one integer tensor
    # type, so these are converted to float on the host instead.
    out = tf.as_dtype(plan.out_dtype)
    branches = [(lambda k=k: to_float(tf, stored(k), out)) for k in plan.kinds]
    index = tf.argmax(tf.cast(tf.equal(f[schema.DTYPE], plan.kinds), tf.int32))
    return tf.switch_case(tf.cast(index, tf.int32), branches)


def _serialized(
    tf: Any,
    files: list[Location],
    records: Sequence[bytes] | None,
    on_problem: Callable[[Problem], None] | None,
    shuffle: bool,
    seed: int | None,
    deterministic: bool,
    input_context: Any,
    limit: int | None,
    tally: Tally | None = None,
) -> Any:
    """The serialized records to read: given, checked one by one (``on_problem``), or read
    by the source for these files (this replica's part); with their count when known."""
    count: int | None = None
    if limit is not None:
        # The limit takes the same records every epoch, cached or not: the first of the
        # unshuffled read (a shuffled file or interleave order would change them).
        shuffle, deterministic = False, True
    if records is not None:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(records), tf.string))
    elif on_problem is not None:
        ds = checked_records(tf, files, shuffle, seed, on_problem, tally)
    else:
        listed = entries(files)
        counts = [e.records for _, e in listed] if listed is not None else None
        found = source(tf, files, counts, shuffle=shuffle, seed=seed,
                       deterministic=deterministic, input_context=input_context)  # fmt: skip
        ds, count = found.records, found.count
    if limit is not None:
        ds = ds.take(limit)
        count = min(limit, count) if count is not None else None
    if count is not None:
        # Known to Keras: model.fit shows a total, and len(ds) works.
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    return ds
