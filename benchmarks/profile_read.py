"""Where a read pipeline's time goes: pipelines that add one step at a time, timed in turn in
one process over the same shards, so that a busy machine hits them all alike.

    python benchmarks/profile_read.py raw SHARDS_DIR [--rounds 7]      # raw-packed shards
    python benchmarks/profile_read.py encoded SHARDS_DIR               # JPEG/PNG shards
    python benchmarks/profile_read.py crop SHARDS_DIR                  # crop="random"
    python benchmarks/profile_read.py jpeg IMAGE_DIR                   # decode ops alone
    ... --keras IMAGE_DIR      # and image_dataset_from_directory over the source images

Each round builds every pipeline afresh and iterates it once (in a rotating order); the
table gives the medians of build time, time to the first batch, one pass, the CPU time of
that pass (this process, all threads) and the rate, relative to the first pipeline. With
``--fresh`` every pipeline runs in a new process each round, as run.py's rows do, so that
start-up costs (graph optimisation, first use of each function) are in the numbers. Steps
mirror imgrec/reading/tfdata.py and imgrec/reading/graph.py; the ``imgrec.*`` rows are the library.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def steps(tf: Any, kind: str, path: str, batch: int, size: tuple[int, int]) -> dict[str, Any]:
    import imgrec
    from imgrec.format import schema
    from imgrec.reading import crops, graph, paths, read_plan, tfdata

    files = sorted(tf.io.gfile.glob(os.path.join(path, "*.tfrecord")))
    full = graph.feature_spec(tf)
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

        def window(hw: Any, seed: Any) -> Any:  # the training crop imgrec draws
            return crops.window_function(tf, "random", size, seed)(hw)

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
        out["tf.data as read_pipelines.py writes it"] = lambda: tfdata_reference(tf, path, size)
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

        # imgrec's own per-record graph (graph.decode_stored, graph.resize_rounded), batched
        # and converted as imgrec.dataset does, with the manifest's Layout as imgrec builds
        # it, and without the size range (the JPEG's DCT scale then chosen per record):
        known = paths.describe(paths.resolve(path, None))
        assert known is not None and known.height and known.width, "needs a manifest"
        want = read_plan.choose_channels(known, None, True)
        as_read = graph.Layout(
            known.formats, known.channels, known.oriented, (known_min(known), known_max(known))
        )
        per_record = graph.Layout(known.formats, known.channels, known.oriented, None)

        def like_imgrec(layout: Any, floats: bool = False) -> Any:
            """imgrec's graph; ``floats``: resized to float and scaled in the parallel map
            (no rounding to uint8, no conversion stage after the batch)."""
            geometry = graph.Geometry(at_least=size)

            def one(s: Any) -> Any:
                f = tf.io.parse_single_example(s, full)
                image = graph.decode_stored(tf, f, tf.uint8, layout, want, geometry)
                if floats:
                    return tf.ensure_shape(tf.image.resize(image, size) / 255.0, [*size, 3])
                return tf.ensure_shape(graph.resize_rounded(tf, image, size), [*size, 3])

            return mapped(one, None if floats else to_float).prefetch(autotune)

        out["imgrec's graph, as imgrec builds it"] = lambda: like_imgrec(as_read)
        out["  DCT scale chosen per record"] = lambda: like_imgrec(per_record)
        out["  floats in the map (no uint8 round trip)"] = lambda: like_imgrec(as_read, floats=True)
    if kind == "crop":
        return out
    out["imgrec host_dataset (uint8 batches)"] = lambda: tfdata.host_dataset(
        path, batch_size=batch, resize=size
    )
    out["imgrec.dataset"] = lambda: imgrec.dataset(path, batch_size=batch, resize=size)
    if kind == "raw":  # stored at the size asked for: what resizing anyway costs
        out["imgrec.dataset, resize=None"] = lambda: imgrec.dataset(path, batch_size=batch)
    return out


def jpeg_ops(tf: Any, folder: str, size: tuple[int, int], count: int = 60) -> None:
    """CPU per image of the decode ops alone (one thread, no tf.data), on JPEGs of
    ``folder``: what each way of decoding costs, whatever the pipeline around it."""
    from pathlib import Path

    from imgrec.reading import crops

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    files = files[:: max(1, len(files) // count)][:count]
    datas = [tf.io.read_file(str(p)) for p in files]
    shapes = [tf.image.extract_jpeg_shape(d) for d in datas]
    windows = [  # imgrec's training crop, seed (i, 0)
        crops.window_function(tf, "random", size, tf.constant([i, 0], tf.int64))(shape[:2])
        for i, shape in enumerate(shapes)
    ]
    area = statistics.mean(
        float(w[2] * w[3]) / float(s[0] * s[1]) for w, s in zip(windows, shapes, strict=True)
    )
    accurate = "INTEGER_ACCURATE"

    def dec(ratio: int = 1, dct: str = "") -> Any:
        return tf.function(
            lambda d, w: tf.io.decode_jpeg(d, channels=3, ratio=ratio, dct_method=dct)
        )

    def fused(resize: bool) -> Any:
        def f(d: Any, w: Any) -> Any:
            image = tf.io.decode_and_crop_jpeg(d, w, channels=3, dct_method=accurate)
            return tf.image.resize(image, size) if resize else image

        return tf.function(f)

    def whole_crop(d: Any, w: Any) -> Any:
        image = tf.io.decode_jpeg(d, channels=3)[w[0] : w[0] + w[2], w[1] : w[1] + w[3]]
        return tf.image.resize(image, size)

    def keras_like(d: Any, w: Any) -> Any:  # image_dataset_from_directory's load_image
        image = tf.io.decode_image(d, channels=3, expand_animations=False)
        return tf.image.resize(image, size)

    ops = {
        "decode_jpeg, full scale (TF's default IDCT)": dec(),
        "decode_jpeg, full scale, INTEGER_ACCURATE": dec(1, accurate),
        "decode_jpeg, ratio 2": dec(2, accurate),
        "decode_jpeg, ratio 4": dec(4, accurate),
        "decode_jpeg, ratio 8": dec(8, accurate),
        "decode_and_crop_jpeg (training-crop window)": fused(False),
        "decode whole, slice window, resize": tf.function(whole_crop),
        "decode_and_crop_jpeg, resize": fused(True),
        "decode_image, resize (keras' load_image)": tf.function(keras_like),
    }
    h, w = (int(v) for v in shapes[0][:2])
    print(f"{len(datas)} JPEGs ({h}x{w} the first); training-crop windows cover {area:.0%}"
          f" of the image on average; CPU ms per image, best of 5:")  # fmt: skip
    for name, fn in ops.items():
        fn(datas[0], windows[0])
        best = math.inf
        for _ in range(5):
            c = time.process_time()
            for d, win in zip(datas, windows, strict=True):
                fn(d, win)
            best = min(best, (time.process_time() - c) / len(datas) * 1000)
        print(f"  {name:46} {best:7.2f}")


def tfdata_reference(tf: Any, path: str, size: tuple[int, int]) -> Any:
    """read_pipelines.py's hand-written tf.data pipeline (the run's baseline row)."""
    import read_pipelines

    opts = read_pipelines.Options()
    opts.size, opts.batch = size, 32
    return read_pipelines.tfdata_pipeline(tf, path, opts)


def known_min(known: Any) -> tuple[int, int]:
    return (known.height[0], known.width[0])


def known_max(known: Any) -> tuple[int, int]:
    return (known.height[1], known.width[1])


def one_pass(ds: Any) -> tuple[int, float]:
    """Iterate once: images, and seconds to the first batch."""
    n, first, start = 0, None, time.perf_counter()
    for element in ds:
        first = first or time.perf_counter() - start
        if isinstance(element, dict):
            element = next(iter(element.values()))
        x = element[0] if isinstance(element, tuple) else element
        n += int(x.shape[0])
    return n, first or 0.0


def timed(builder: Callable[[], Any]) -> dict[str, float]:
    t0 = time.perf_counter()
    ds = builder()
    t1, c1 = time.perf_counter(), time.process_time()
    n, first = one_pass(ds)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"build": t1 - t0, "first": first, "pass": t2 - t1, "cpu": c2 - c1, "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["raw", "encoded", "crop", "jpeg"])
    ap.add_argument("path")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    ap.add_argument("--only", nargs="*", help="pipeline names containing these words")
    ap.add_argument("--keras", help="also image_dataset_from_directory over this folder")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="time each pipeline in a new process (first use: start-up costs included)",
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)  # --fresh's child: this pipeline once
    args = ap.parse_args()

    import tensorflow as tf

    size = (args.size[0], args.size[1])
    if args.kind == "jpeg":
        jpeg_ops(tf, args.path, size)
        return
    builders = steps(tf, args.kind, args.path, args.batch, size)
    if args.keras:
        builders["keras (image_dataset_from_directory, /255)"] = lambda: (
            tf.keras.utils.image_dataset_from_directory(
                args.keras, image_size=size, batch_size=args.batch, shuffle=False, verbose=False
            )
            .map(lambda x, y: (x / 255.0, y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
    if args.one:
        print(json.dumps(timed(builders[args.one])), flush=True)
        os._exit(0)
    if args.only:
        builders = {k: v for k, v in builders.items() if any(w in k for w in args.only)}
    names = list(builders)
    if not args.fresh:
        for name in names:  # warm up: first tracing of each kind of op
            one_pass(builders[name]())
    times: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if args.fresh:
                cmd = [sys.executable, __file__, *sys.argv[1:], "--one", name]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                times[name].append(json.loads(out.strip().splitlines()[-1]))
            else:
                times[name].append(timed(builders[name]))
    width = max(len(n) for n in names)
    print(f"{'pipeline':{width}}  build s  1st batch s  pass s  build+pass s   CPU s"
          "  images/s  rate vs first  CPU/image ms")  # fmt: skip
    base = None
    for name in names:
        m = {k: statistics.median(t[k] for t in times[name]) for k in times[name][0]}
        both = statistics.median(t["build"] + t["pass"] for t in times[name])
        rate = m["n"] / (both if args.fresh else m["pass"])
        base = base or rate
        print(f"{name:{width}}  {m['build']:7.3f}  {m['first']:11.3f}  {m['pass']:6.3f}"
              f"  {both:12.3f}  {m['cpu']:6.3f}  {rate:8,.0f}  {rate / base:12.2f}x"
              f"  {1000 * m['cpu'] / m['n']:12.3f}")  # fmt: skip
    how = "each in a new process; rate over build+pass" if args.fresh else "rate over pass"
    print(f"(medians of {args.rounds} rounds, {how}; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
