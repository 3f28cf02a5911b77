"""Read-back benchmark, run by run.py as one subprocess per measurement.

Builds one input pipeline that yields float32 batches of 32 images resized to a fixed size,
iterates it once, and prints one JSON line of timings as the last line of stdout.

    python benchmarks/read_pipelines.py imgrec SHARDS_DIR     # imgrec.dataset
    python benchmarks/read_pipelines.py tfdata SHARDS_DIR     # hand-written tf.data
    python benchmarks/read_pipelines.py keras IMAGE_DIR       # image_dataset_from_directory

``import_s`` is the import of TensorFlow (and keras or imgrec), the same for every pipeline;
``timed_s`` is building the pipeline plus iterating it once, what the pipelines are compared on.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

START = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def imgrec_pipeline(tf: Any, path: str, batch: int, size: tuple[int, int]) -> Any:
    import imgrec

    return imgrec.dataset(path, batch_size=batch, resize=size)


def tfdata_pipeline(tf: Any, path: str, batch: int, size: tuple[int, int]) -> Any:
    """What a competent user writes for the imgrec encoded shards with plain TensorFlow."""
    autotune = tf.data.AUTOTUNE
    files = sorted(tf.io.gfile.glob(os.path.join(path, "*.tfrecord")))
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(serialized: Any) -> Any:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_image(f["image/encoded"], channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)
        return tf.image.resize(image, size), f["image/class/label"]

    ds = tf.data.TFRecordDataset(files, num_parallel_reads=autotune)
    return ds.map(decode, num_parallel_calls=autotune).batch(batch).prefetch(autotune)


def keras_pipeline(tf: Any, path: str, batch: int, size: tuple[int, int]) -> Any:
    """tf.keras.utils.image_dataset_from_directory, then the usual /255 scaling."""
    autotune = tf.data.AUTOTUNE
    ds = tf.keras.utils.image_dataset_from_directory(
        path, image_size=size, batch_size=batch, shuffle=False, verbose=False
    )
    return ds.map(lambda x, y: (x / 255.0, y), num_parallel_calls=autotune).prefetch(autotune)


PIPELINES = {"imgrec": imgrec_pipeline, "tfdata": tfdata_pipeline, "keras": keras_pipeline}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(PIPELINES))
    ap.add_argument("path")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    args = ap.parse_args()

    import tensorflow as tf

    if args.kind == "keras":
        tf.keras.utils  # noqa: B018  (tf.keras loads keras lazily: count it as an import)
    elif args.kind == "imgrec":
        import imgrec.reader  # noqa: F401
    imported = time.perf_counter()

    ds = PIPELINES[args.kind](tf, args.path, args.batch, tuple(args.size))
    built = time.perf_counter()
    images = batches = 0
    first_batch = None
    shape, dtype = None, None
    for x, _ in ds:
        if first_batch is None:
            first_batch = time.perf_counter()
            shape, dtype = list(x.shape), x.dtype.name
        images += int(x.shape[0])
        batches += 1
    done = time.perf_counter()
    result = {
        "kind": args.kind,
        "images": images,
        "batches": batches,
        "batch_shape": shape,
        "dtype": dtype,
        "import_s": imported - START,
        "build_s": built - imported,
        "first_batch_s": (first_batch or done) - built,
        "iterate_s": done - built,
        "timed_s": done - imported,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
