"""Train a small PyTorch CNN on shards packed by imgrec, without TensorFlow, on the CPU.

    pip install torch==2.13.0   # or your own PyTorch; imgrec does not depend on it
    python examples/train_torch.py [--per-class 300] [--epochs 8] [--seed 0]

1. Draws the shapes of ``train_classifier.py`` (circles, squares and triangles, 64x64, every
   fourth gray, PNG and JPEG) and packs them with ``imgrec.pack``, split 80/20, 3 channels.
2. Reads the shards with ``imgrec.RecordSource(SHARDS, split=...)``, a map-style dataset
   (``len``, indexing: one positioned read per record), in a ``DataLoader`` with 2 worker
   processes, in the order of ``imgrec.RecordSampler`` (shuffled from the seed, a new order
   each epoch; ``rank=, ranks=`` would split it over processes).
3. Trains and prints the validation accuracy as the last line, and that TensorFlow was
   never imported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from train_classifier import SIZE, make_images

import imgrec


def model() -> nn.Module:
    """A small CNN: three convolutions, global max pooling, two dense layers."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3),
    )  # fmt: skip


def batches(source: imgrec.RecordSource, sampler: imgrec.RecordSampler | None) -> DataLoader:
    return DataLoader(source, batch_size=32, sampler=sampler, num_workers=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        src, shards = Path(tmp) / "src", Path(tmp) / "shards"
        make_images(src, args.per_class, args.seed)
        opts = imgrec.PackOptions(split=(("train", 0.8), ("val", 0.2)), channels="3")
        manifest = imgrec.pack(src, shards, opts)
        train = imgrec.RecordSource(shards, split="train")
        val = imgrec.RecordSource(shards, split="val")
        print(f"packed: {manifest.records} images (train {len(train)}, val {len(val)})")
        net = model()
        optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
        sampler = imgrec.RecordSampler(train, seed=args.seed)
        start = time.perf_counter()
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            total = 0.0
            for batch in batches(train, sampler):
                images = batch["image"].permute(0, 3, 1, 2)  # HWC float32 in [0, 1] -> CHW
                loss = nn.functional.cross_entropy(net(images), batch["label"])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(images)
            print(f"epoch {epoch + 1}: loss {total / len(train):.4f}")
        seconds = time.perf_counter() - start
        net.eval()
        right = 0
        with torch.no_grad():
            for batch in batches(val, None):
                guess = net(batch["image"].permute(0, 3, 1, 2)).argmax(1)
                right += int((guess == batch["label"]).sum())
        assert tuple(batch["image"].shape[1:]) == (SIZE, SIZE, 3)
    print(f"tensorflow imported: {'tensorflow' in sys.modules}")
    print(f"time: {seconds:.1f} s for {args.epochs} epochs")
    print(f"validation accuracy: {right / len(val):.4f}")


if __name__ == "__main__":
    main()
