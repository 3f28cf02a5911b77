"""Train a small Keras CNN on shards packed by imgrec, end to end, on the CPU.

    python examples/train_classifier.py [--per-class 300] [--epochs 8] [--seed 0]

1. Draws a labelled data set: circles, squares and triangles at random positions, sizes and
   colours, 64x64, one folder per class; like a real photo folder it is mixed: every fourth
   image is grayscale, and they are saved as PNG and JPEG.
2. Packs the folder once with ``imgrec.pack``, split 80/20 (``--split train=0.8,val=0.2``):
   an image's split depends only on its path, so adding images later never moves one.
3. Trains from ``imgrec.dataset(SHARDS, split="train", batch_size=..., shuffle=True)`` and
   evaluates on ``split="val"``: gray and colour images batch together as RGB with no
   extra argument.

The run is deterministic for a given --seed (data, shuffling, weights, and TensorFlow's ops).
The last line printed is the validation accuracy.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

import imgrec

# TensorFlow is imported in main(), not here: imgrec.pack loads images in worker processes
# started with "spawn", and each of them imports this module again. A module-level
# `import tensorflow` would cost every worker TensorFlow's start-up time (seconds).

CLASSES = ("circle", "square", "triangle")
SIZE = 64


def draw(shape: str, rng: random.Random) -> Image.Image:
    """One shape of random size, position and colour on a plain background."""
    while True:  # foreground and background far enough apart to be told apart
        bg = [rng.randrange(256) for _ in range(3)]
        fg = [rng.randrange(256) for _ in range(3)]
        if sum(abs(a - b) for a, b in zip(bg, fg, strict=True)) >= 150:
            break
    im = Image.new("RGB", (SIZE, SIZE), tuple(bg))
    d = ImageDraw.Draw(im)
    r = rng.randrange(8, 24)  # half the shape's width
    cx, cy = rng.randrange(r + 2, SIZE - r - 2), rng.randrange(r + 2, SIZE - r - 2)
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(fg))
    elif shape == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=tuple(fg))
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=tuple(fg))
    return im


def make_images(src: Path, per_class: int, seed: int) -> None:
    """SRC/<class>/<n>.png or .jpg; every fourth image grayscale."""
    rng = random.Random(seed)
    for name in CLASSES:
        (src / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = draw(name, rng)
            if i % 4 == 3:
                im = im.convert("L")
            im.save(src / name / f"{name}_{i:04d}.{'jpg' if i % 2 else 'png'}", quality=95)


def build_model(tf: Any) -> Any:
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            tf.keras.Input((SIZE, SIZE, 3)),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(64, activation="relu"),
            layers.Dense(len(CLASSES)),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(2e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=300, help="images per class (300)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for everything (0)")
    parser.add_argument("--workdir", type=Path, help="keep images and shards here (default: temp)")
    args = parser.parse_args()

    start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        src, shards = work / "images", work / "shards"
        make_images(src, args.per_class, args.seed)
        t_images = time.perf_counter()

        opts = imgrec.PackOptions(
            split=(("train", 0.8), ("val", 0.2)), seed=args.seed, workers=os.cpu_count() or 1,
            overwrite=True,
        )  # fmt: skip
        m = imgrec.pack(src, shards, opts)
        assert m.splits is not None
        counts = ", ".join(f"{name} {s.records}" for name, s in m.splits.items())
        print(f"packed: {m.records} images ({counts}), {len(m.shards)} shard(s)")
        t_pack = time.perf_counter()

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        t_tf = time.perf_counter()
        tf.keras.utils.set_random_seed(args.seed)
        tf.config.experimental.enable_op_determinism()

        # Nothing but the batch size: the shapes (64x64x3: gray read as RGB) and the number
        # of batches come from the manifest.
        train = imgrec.dataset(
            shards, split="train", batch_size=args.batch_size, shuffle=True, seed=args.seed
        )
        val = imgrec.dataset(shards, split="val", batch_size=128)
        model = build_model(tf)
        model.fit(train, validation_data=val, epochs=args.epochs, verbose=2)
        _, accuracy = model.evaluate(val, verbose=0)
        t_train = time.perf_counter()

    print(
        f"time: {t_train - start:.1f} s (images {t_images - start:.1f} s,"
        f" pack {t_pack - t_images:.1f} s, TensorFlow import {t_tf - t_pack:.1f} s,"
        f" train {t_train - t_tf:.1f} s)"
    )
    print(f"validation accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
