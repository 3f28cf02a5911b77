"""Baseline for `imgrec pack`: the simplest TFRecord writer a user would write by hand.

Reads each file's bytes as they are and writes a tf.train.Example with ``image/encoded`` and
``image/class/label`` through tf.io.TFRecordWriter, one process, one output file. No
validation, no shuffling, no sharding, no index, no manifest. Its ``import tensorflow``
is part of what it costs, so it is measured as a whole process.

    python benchmarks/baseline_tf_writer.py SRC OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import tensorflow as tf


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    classes = sorted(p.name for p in src.iterdir() if p.is_dir())
    count = 0
    with tf.io.TFRecordWriter(str(out / "data.tfrecord")) as writer:
        for label, name in enumerate(classes):
            for path in sorted((src / name).iterdir()):
                feature = {
                    "image/encoded": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[path.read_bytes()])
                    ),
                    "image/class/label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[label])
                    ),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
                count += 1
    print(count)


if __name__ == "__main__":
    main()
