"""Where a read pipeline's time goes: pipelines that add one step at a time, timed in turn in
one process over the same shards, so that a busy machine hits them all alike.

    python benchmarks/profile_read.py raw SHARDS_DIR [--rounds 7]      # raw-packed shards
    python benchmarks/profile_read.py encoded SHARDS_DIR               # JPEG/PNG shards
    python benchmarks/profile_read.py crop SHARDS_DIR                  # crop="random"
    ... --keras IMAGE_DIR      # and image_dataset_from_directory over the source images

Each round builds every pipeline afresh and iterates it once (in a rotating order); the
table gives the medians of build time, one pass, the CPU time of that pass (this process,
all threads: the work, whatever else runs on the machine) and the rate, relative to the
first (rawest) pipeline. Steps mirror imgrec/reader.py and imgrec/tfdecode.py; the
``imgrec.*`` rows are the library itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def steps(tf: Any, kind: str, path: str, batch: int, size: tuple[int, int]) -> dict[str, Any]:
    import imgrec
    from imgrec import reader, schema, shards, tfdecode

    files = sorted(tf.io.gfile.glob(os.path.join(path, "*.tfrecord")))
    full = tfdecode.feature_spec(tf)
    plain = tf.autograph.experimental.do_not_convert
    autotune = tf.data.AUTOTUNE

    def records() -> Any:
        return tf.data.TFRecordDataset(files, num_parallel_reads=len(files))

    def mapped(fn: Callable[[Any], Any], then: Callable[[Any], Any] | None = None) -> Any:
        ds = records().map(plain(fn), num_parallel_calls=autotune).batch(batch)
        return ds.map(plain(then)) if then else ds

    def to_float(x: Any) -> Any:
        return tf.image.convert_image_dtype(x, tf.float32)

    def rounded(image: Any) -> Any:
        return tf.saturate_cast(tf.round(tf.image.resize(tf.cast(image, tf.float32), size)),
                                tf.uint8)  # fmt: skip

    out: dict[str, Callable[[], Any]] = {}
    if kind == "raw":
        spec = {schema.RAW: full[schema.RAW], schema.SHAPE: full[schema.SHAPE]}

        def raw(s: Any, parse_spec: Any = spec) -> Any:
            f = tf.io.parse_single_example(s, parse_spec)
            return tf.reshape(tf.io.decode_raw(f[schema.RAW], tf.uint8), f[schema.SHAPE])

        out["records only (bytes, batched)"] = lambda: records().batch(batch)
        out["parse raw + shape"] = lambda: mapped(lambda s: tf.io.parse_single_example(s, spec))
        out["+ decode_raw"] = lambda: mapped(
            lambda s: tf.io.decode_raw(tf.io.parse_single_example(s, spec)[schema.RAW], tf.uint8)
        )
        out["+ reshape (uint8 batches)"] = lambda: mapped(raw)
        out["+ parse every feature"] = lambda: mapped(lambda s: raw(s, full))
        out["+ convert to float32 (per batch)"] = lambda: mapped(raw, to_float)
        out["+ resize, round to uint8"] = lambda: mapped(lambda s: rounded(raw(s)), to_float)
        out["+ resize to float (no rounding)"] = lambda: mapped(
            lambda s: tf.image.resize(raw(s), size) / 255.0
        )
        out["stored size: no resize, convert per record"] = lambda: mapped(
            lambda s: to_float(raw(s, full))
        ).prefetch(autotune)
    elif kind == "crop":
        spec = {schema.ENCODED: full[schema.ENCODED]}

        def window(hw: Any, seed: Any) -> Any:
            begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
                tf.concat([tf.cast(hw, tf.int32), [1]], 0),
                bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
                seed=seed,
                min_object_covered=0.1,
                aspect_ratio_range=(3 / 4, 4 / 3),
                area_range=(0.08, 1.0),
                max_attempts=10,
                use_image_if_no_bounding_boxes=True,
            )
            return tf.stack([begin[0], begin[1], extent[0], extent[1]])

        def seeded(fn: Callable[[Any, Any], Any]) -> Any:
            seeds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((records(), seeds))
            return ds.map(plain(fn), num_parallel_calls=autotune).batch(batch)

        def encoded(s: Any) -> Any:
            return tf.io.parse_single_example(s, spec)[schema.ENCODED]

        def whole(s: Any, seed: Any) -> Any:
            image = tf.io.decode_jpeg(encoded(s), channels=3)
            y, x, h, w = tf.unstack(window(tf.shape(image)[:2], seed))
            return tf.image.resize(image[y : y + h, x : x + w], size)

        def fused(s: Any, seed: Any, **kw: Any) -> Any:
            data = encoded(s)

            def jpeg() -> Any:
                win = window(tf.image.extract_jpeg_shape(data)[:2], seed)
                return tf.io.decode_and_crop_jpeg(data, win, channels=3, **kw)

            def other() -> Any:  # the PNGs
                image = tf.io.decode_png(data, channels=3)
                y, x, h, w = tf.unstack(window(tf.shape(image)[:2], seed))
                return image[y : y + h, x : x + w]

            return tf.image.resize(tf.cond(tf.io.is_jpeg(data), jpeg, other), size)

        out["decode whole, crop, resize"] = lambda: seeded(whole)
        out["decode_and_crop_jpeg, resize"] = lambda: seeded(fused)
        out["decode_and_crop_jpeg INTEGER_ACCURATE"] = lambda: seeded(
            lambda s, seed: fused(s, seed, dct_method="INTEGER_ACCURATE")
        )
        out['imgrec.dataset crop="random"'] = lambda: imgrec.dataset(
            path, batch_size=batch, resize=size, crop="random", seed=0
        )
    else:
        spec = {schema.ENCODED: full[schema.ENCODED]}

        def jpeg(s: Any, parse_spec: Any = spec, **kw: Any) -> Any:
            data = tf.io.parse_single_example(s, parse_spec)[schema.ENCODED]
            return tf.io.decode_jpeg(data, channels=3, **kw)

        out["bare: parse, decode_jpeg, resize"] = lambda: mapped(
            lambda s: tf.image.resize(jpeg(s), size)
        )
        out["+ INTEGER_ACCURATE"] = lambda: mapped(
            lambda s: tf.image.resize(jpeg(s, dct_method="INTEGER_ACCURATE"), size)
        )
        out["+ parse every feature"] = lambda: mapped(
            lambda s: tf.image.resize(jpeg(s, full, dct_method="INTEGER_ACCURATE"), size)
        )
        out["+ round to uint8, convert per batch"] = lambda: mapped(
            lambda s: rounded(jpeg(s, full, dct_method="INTEGER_ACCURATE")), to_float
        )
        out["no rounding: resize / 255 per record"] = lambda: mapped(
            lambda s: tf.image.resize(jpeg(s, full, dct_method="INTEGER_ACCURATE"), size) / 255
        ).prefetch(autotune)

        # imgrec's own decode graph (format case, per-record DCT scale), then its resize
        known = shards.describe(shards.resolve(path, None))
        layout = tfdecode.Layout()
        if known is not None:
            layout = tfdecode.Layout(known.formats, known.channels, known.oriented, None)
        geometry = tfdecode.Geometry(at_least=size)

        def stored(s: Any) -> Any:
            f = tf.io.parse_single_example(s, full)
            return tfdecode.decode_stored(tf, f, tf.uint8, layout, None, geometry)

        out["imgrec decode_stored, resize (uint8 in)"] = lambda: mapped(
            lambda s: tf.image.resize(stored(s), size)
        )
        out["imgrec decode_stored, cast, resize, round"] = lambda: mapped(
            lambda s: reader._resize(tf, stored(s), size)
        )
    if kind == "crop":
        return out
    out["imgrec host_dataset (uint8 batches)"] = lambda: reader.host_dataset(
        path, batch_size=batch, resize=size
    )
    out["imgrec.dataset"] = lambda: imgrec.dataset(path, batch_size=batch, resize=size)
    if kind == "raw":  # stored at the size asked for: what resizing anyway costs
        out["imgrec.dataset, resize=None"] = lambda: imgrec.dataset(path, batch_size=batch)
    return out


def one_pass(ds: Any) -> int:
    n = 0
    for element in ds:
        if isinstance(element, dict):
            element = next(iter(element.values()))
        x = element[0] if isinstance(element, tuple) else element
        n += int(x.shape[0])
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["raw", "encoded", "crop"])
    ap.add_argument("path")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    ap.add_argument("--only", nargs="*", help="pipeline names containing these words")
    ap.add_argument("--keras", help="also image_dataset_from_directory over this folder")
    args = ap.parse_args()

    import tensorflow as tf

    size = (args.size[0], args.size[1])
    builders = steps(tf, args.kind, args.path, args.batch, size)
    if args.keras:
        builders["keras (image_dataset_from_directory, /255)"] = lambda: (
            tf.keras.utils.image_dataset_from_directory(
                args.keras, image_size=size, batch_size=args.batch, shuffle=False, verbose=False
            )
            .map(lambda x, y: (x / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
    if args.only:
        builders = {k: v for k, v in builders.items() if any(w in k for w in args.only)}
    names = list(builders)
    for name in names:  # warm up: first tracing of each kind of op
        one_pass(builders[name]())
    times: dict[str, list[tuple[float, float, float, int]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            ds = builders[name]()
            t1, c1 = time.perf_counter(), time.process_time()
            n = one_pass(ds)
            t2, c2 = time.perf_counter(), time.process_time()
            times[name].append((t1 - t0, t2 - t1, c2 - c1, n))
    width = max(len(n) for n in names)
    print(f"{'pipeline':{width}}  build s  pass s   CPU s  images/s  rate vs first  CPU/image ms")
    base = None
    for name in names:
        build = statistics.median(t[0] for t in times[name])
        it = statistics.median(t[1] for t in times[name])
        cpu = statistics.median(t[2] for t in times[name])
        n = times[name][0][3]
        rate = n / it
        base = base or rate
        print(f"{name:{width}}  {build:7.3f}  {it:6.3f}  {cpu:6.3f}  {rate:8,.0f}"
              f"  {rate / base:12.2f}x  {1000 * cpu / n:12.3f}")  # fmt: skip
    print(f"(medians of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
