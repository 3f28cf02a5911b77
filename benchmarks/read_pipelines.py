"""Read-back benchmark, run by run.py as one subprocess per measurement.

Builds one input pipeline that yields float32 batches of 32 images resized to a fixed size,
iterates it (once, or ``--epochs`` times), and prints one JSON line of timings as the last
line of stdout.

    python benchmarks/read_pipelines.py imgrec SHARDS_DIR     # imgrec.dataset
    python benchmarks/read_pipelines.py imgrec SHARDS_DIR --crop random
    python benchmarks/read_pipelines.py imgrec SHARDS_DIR --cache --epochs 2
    python benchmarks/read_pipelines.py tfdata SHARDS_DIR     # hand-written tf.data
    python benchmarks/read_pipelines.py bare SHARDS_DIR       # decode + resize, nothing else
    python benchmarks/read_pipelines.py tfcrop SHARDS_DIR     # decode whole, then crop
    python benchmarks/read_pipelines.py tfraw SHARDS_DIR      # raw shards at the size, by hand
    python benchmarks/read_pipelines.py keras IMAGE_DIR       # image_dataset_from_directory
    python benchmarks/read_pipelines.py psnr IMAGE_DIR --shards NAME=DIR ...  # quality, untimed

``import_s`` is the import of TensorFlow (and keras or imgrec), the same for every pipeline;
``timed_s`` is building the pipeline plus iterating it once, what the pipelines are compared on.
With ``--epochs N`` the same dataset is iterated N times in this one process; ``epochs`` lists
each pass (the first includes building the pipeline, as ``timed_s`` does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

START = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class Options(argparse.Namespace):
    batch: int
    size: tuple[int, int]
    crop: str | None
    cache: bool
    seed: int


def imgrec_pipeline(tf: Any, path: str, opts: Options) -> Any:
    import imgrec

    extra: dict[str, Any] = {}
    if opts.crop:
        extra.update(crop=opts.crop, seed=opts.seed)
    if opts.cache:
        extra["cache"] = True
    return imgrec.dataset(path, batch_size=opts.batch, resize=opts.size, **extra)


def _shards(tf: Any, path: str) -> list[str]:
    return sorted(tf.io.gfile.glob(os.path.join(path, "*.tfrecord")))


def tfdata_pipeline(tf: Any, path: str, opts: Options) -> Any:
    """What a competent user writes for the imgrec encoded shards with plain TensorFlow."""
    autotune = tf.data.AUTOTUNE
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(serialized: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_image(f["image/encoded"], channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        return tf.image.resize(image, opts.size), f["image/class/label"]

    ds = tf.data.TFRecordDataset(_shards(tf, path), num_parallel_reads=autotune)
    return ds.map(decode, num_parallel_calls=autotune).batch(opts.batch).prefetch(autotune)


def bare_pipeline(tf: Any, path: str, opts: Options) -> Any:
    """The least a decode + resize can do over the same shards: the encoded bytes alone are
    parsed, decoded (decode_jpeg also decodes the PNGs) and resized; batches of float32 in
    [0, 255], no labels, no scaling, no prefetch."""
    spec = {"image/encoded": tf.io.FixedLenFeature([], tf.string)}

    def decode(serialized: Any) -> Any:
        data = tf.io.parse_single_example(serialized, spec)["image/encoded"]
        return tf.image.resize(tf.io.decode_jpeg(data, channels=3), opts.size)

    ds = tf.data.TFRecordDataset(_shards(tf, path))
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(opts.batch)


def tfcrop_pipeline(tf: Any, path: str, opts: Options) -> Any:
    """The training crop written by hand: decode the whole image, draw the window with the
    parameters of imgrec/crops.py, slice, resize, flip; float32 in [0, 1]."""
    autotune = tf.data.AUTOTUNE
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(serialized: Any, seed: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_jpeg(f["image/encoded"], channels=3)
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seed,
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, extent)
        image = tf.image.resize(image, opts.size) / 255.0
        image = tf.image.stateless_random_flip_left_right(image, tf.reverse(seed, [0]))
        return image, f["image/class/label"]

    seeds = tf.data.Dataset.random(seed=opts.seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.TFRecordDataset(_shards(tf, path), num_parallel_reads=autotune)
    ds = tf.data.Dataset.zip((ds, seeds))
    return ds.map(decode, num_parallel_calls=autotune).batch(opts.batch).prefetch(autotune)


def tfraw_pipeline(tf: Any, path: str, opts: Options) -> Any:
    """The least a reader of raw shards stored at the size asked for can do: parse the
    pixels and their shape, decode_raw, reshape, convert to float32 in [0, 1] (in the
    parallel map), batch, prefetch. No resize: the records must already have the size."""
    autotune = tf.data.AUTOTUNE
    spec = {
        "image/raw": tf.io.FixedLenFeature([], tf.string),
        "image/shape": tf.io.FixedLenFeature([3], tf.int64),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(serialized: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.reshape(tf.io.decode_raw(f["image/raw"], tf.uint8), f["image/shape"])
        image = tf.ensure_shape(image, [*opts.size, 3])
        return tf.image.convert_image_dtype(image, tf.float32), f["image/class/label"]

    ds = tf.data.TFRecordDataset(_shards(tf, path), num_parallel_reads=autotune)
    return ds.map(decode, num_parallel_calls=autotune).batch(opts.batch).prefetch(autotune)


def keras_pipeline(tf: Any, path: str, opts: Options) -> Any:
    """tf.keras.utils.image_dataset_from_directory, then the usual /255 scaling."""
    autotune = tf.data.AUTOTUNE
    ds = tf.keras.utils.image_dataset_from_directory(
        path, image_size=opts.size, batch_size=opts.batch, shuffle=False, verbose=False
    )
    return ds.map(lambda x, y: (x / 255.0, y), num_parallel_calls=autotune).prefetch(autotune)


PIPELINES = {
    "imgrec": imgrec_pipeline,
    "tfdata": tfdata_pipeline,
    "bare": bare_pipeline,
    "tfcrop": tfcrop_pipeline,
    "tfraw": tfraw_pipeline,
    "keras": keras_pipeline,
}


def idle_seconds() -> float:
    """Seconds all cores of the machine have spent idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (fields[3] + fields[4]) / os.sysconf("SC_CLK_TCK")


def iterate(ds: Any) -> dict[str, Any]:
    """One pass: images, batches, the first batch's shape and dtype, and timings; with the
    cores this process used and the cores left idle on the machine during the pass."""
    idle = idle_seconds()
    start, cpu = time.perf_counter(), time.process_time()
    images = batches = 0
    first_batch = None
    shape, dtype = None, None
    for element in ds:
        x = element[0] if isinstance(element, tuple) else element
        if first_batch is None:
            first_batch = time.perf_counter()
            shape, dtype = list(x.shape), x.dtype.name
        images += int(x.shape[0])
        batches += 1
    done = time.perf_counter()
    cpu, idle = time.process_time() - cpu, idle_seconds() - idle
    return {
        "images": images,
        "batches": batches,
        "batch_shape": shape,
        "dtype": dtype,
        "first_batch_s": (first_batch or done) - start,
        "iterate_s": done - start,
        "iterate_cpu_s": cpu,  # this process, all its threads
        "cores_used": cpu / (done - start),
        "cores_idle": idle / (done - start),  # the whole machine's idle time, in cores
    }


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    # Below a millionth of a level squared, the difference is float rounding (x / 255 * 255).
    return math.inf if mse < 1e-6 else 10 * math.log10(255.0**2 / mse)


def quality(tf: Any, src: str, shards: list[str], opts: Options, sample: int) -> dict[str, Any]:
    """PSNR against the antialiased reference (Pillow's LANCZOS resize of the whole source
    image), for a sample of the images, of imgrec.dataset over each of ``shards``
    (``NAME=DIR``: packs of ``src``) and of image_dataset_from_directory. Not timed."""
    import tempfile

    import numpy as np
    from PIL import Image

    import imgrec

    root = Path(src).resolve()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(files) // sample)
    chosen = files[::step][:sample]
    h, w = opts.size
    reference = {}
    for p in chosen:
        with Image.open(p) as im:
            small = im.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        reference[p.relative_to(root).as_posix()] = np.asarray(small, np.float64)

    outputs: dict[str, dict[str, Any]] = {}
    for named in shards:
        name, folder = named.split("=", 1) if "=" in named else ("imgrec", named)
        found = outputs[name] = {}
        ds = imgrec.dataset(folder, resize=opts.size, with_filenames=True, labels=False)
        for image, filename in ds:
            key = filename.numpy().decode()
            if key in reference:
                found[key] = image.numpy() * 255.0
        missing = sorted(set(reference) - set(found))
        if missing:
            raise SystemExit(f"not found in {folder}: {missing[:3]} (last stored: {key!r})")

    found = outputs["keras"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # keras on a folder of links to the sample alone (it decodes every file it lists).
        for key in reference:
            link = Path(tmp, key)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root / key)
        ds = tf.keras.utils.image_dataset_from_directory(
            tmp, labels=None, image_size=opts.size, batch_size=None, shuffle=False,
            verbose=False,
        )  # fmt: skip
        for key, image in zip(ds.file_paths, ds, strict=True):
            found[Path(key).relative_to(tmp).as_posix()] = image.numpy()

    per_image = {
        name: {k: psnr(images[k], ref) for k, ref in reference.items()}
        for name, images in outputs.items()
    }
    first = next(iter(outputs))
    return {
        "kind": "psnr",
        "reference": "Pillow LANCZOS resize of the whole source image",
        "images": len(reference),
        "pipelines": {
            name: {"mean_db": sum(v.values()) / len(v), "min_db": min(v.values())}
            for name, v in per_image.items()
        },
        "imgrec_db": sum(per_image[first].values()) / len(reference),
        "keras_db": sum(per_image["keras"].values()) / len(reference),
        "imgrec_better": sum(per_image[first][k] > per_image["keras"][k] for k in reference),
        "per_image": per_image,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=[*sorted(PIPELINES), "psnr"])
    ap.add_argument("path")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    ap.add_argument("--crop", choices=["random", "center"], help="imgrec: crop= this")
    ap.add_argument("--cache", action="store_true", help="imgrec: cache=True")
    ap.add_argument("--seed", type=int, default=0, help="crop seed (imgrec, tfcrop)")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the same dataset")
    ap.add_argument(
        "--shards",
        action="append",
        default=[],
        help="psnr: NAME=DIR, a pack of PATH (repeat; the first is compared with keras)",
    )
    ap.add_argument("--sample", type=int, default=20, help="psnr: images compared")
    args = ap.parse_args(namespace=Options())
    args.size = (args.size[0], args.size[1])

    import tensorflow as tf

    if args.kind in ("keras", "psnr"):
        tf.keras.utils  # noqa: B018  (tf.keras loads keras lazily: count it as an import)
    if args.kind in ("imgrec", "psnr"):
        import imgrec.reading.tfdata  # noqa: F401
    imported = time.perf_counter()

    if args.kind == "psnr":
        print(json.dumps(quality(tf, args.path, args.shards, args, args.sample)))
        return

    ds = PIPELINES[args.kind](tf, args.path, args)
    built = time.perf_counter()
    passes = [iterate(ds) for _ in range(args.epochs)]
    first = passes[0]
    passes[0] = {**first, "timed_s": built - imported + first["iterate_s"]}
    for p in passes[1:]:
        p["timed_s"] = p["iterate_s"]
    result = {
        "kind": args.kind,
        **first,
        "import_s": imported - START,
        "build_s": built - imported,
        "timed_s": passes[0]["timed_s"],
        "epochs": passes,
    }
    print(json.dumps(result), flush=True)
    # Skip TensorFlow's teardown at exit (1 to 3 s here): not part of any measurement.
    os._exit(0)


if __name__ == "__main__":
    main()
