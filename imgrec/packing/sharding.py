"""The shard plan: which image goes to which split, in which order, in which shard.

Made once, before any byte is written, from the sorted file list and the options only:
never from the number of workers or the executor. That is what makes the output
byte-reproducible.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass

from ..core.errors import InputError
from ..core.spool import MEMORY, Store
from ..format.layout import index_for
from ..format.options import PackOptions
from .discover import Item


@dataclass(frozen=True)
class ShardSpec:
    """One shard to write: its file name, split, and images in the order they are stored."""

    name: str  # e.g. "train-00003-of-00010.tfrecord"
    split: str | None
    items: Sequence[Item]  # a tuple; on disk for listings too long to hold (``spool``)
    positions: Sequence[int] = ()  # where its items are among the plan's candidates

    @property
    def index(self) -> str:
        return index_for(self.name)

    @property
    def prefix(self) -> str:
        """The name the shard shares with the others of its run ("train", "data")."""
        return self.name.rsplit("-", 3)[0]


def plan_shards(
    candidates: Sequence[Item],
    estimate: Sequence[int],
    opts: PackOptions,
    store: Store = MEMORY,
) -> list[ShardSpec]:
    """Every shard of the dataset, in manifest order. ``estimate`` is each candidate's rough
    stored size; ``store`` keeps the plan's per-image numbers (in memory, or on disk for
    listings too long to hold)."""
    named: list[tuple[str, str | None, Sequence[int], float]]
    if opts.split:
        groups = split_indices(candidates, opts.split, opts.seed, opts.split_mode, store)
        named = [(name, name, groups[name], ratio) for name, ratio in opts.split]
    else:
        named = [(opts.name, None, range(len(candidates)), 1.0)]
    specs = []
    for name, split, members, ratio in named:
        if not members:
            continue
        if opts.shards is None:
            count = math.ceil(sum(estimate[k] for k in members) / opts.shard_size)
        elif split is None:
            count = opts.shards
        else:  # --shards is the total: each split gets its share, at least one
            count = min(len(members), max(1, math.floor(opts.shards * ratio + 0.5)))
        ordered = members
        if opts.shuffle:
            if isinstance(members, range):
                ordered = store.numbers()
                ordered.extend(members)
            # The permutation depends only on the seed, the name and the count.
            random.Random(f"{opts.seed}/{name}").shuffle(ordered)  # type: ignore[arg-type]
        ranges = balanced_ranges(len(ordered), count)
        for index, (start, stop) in enumerate(ranges):
            shard = f"{name}-{index:05d}-of-{len(ranges):05d}.tfrecord"
            items = store.pick(candidates, ordered, start, stop)
            specs.append(ShardSpec(shard, split, items, store.span(ordered, start, stop)))
    return specs


def assign_splits(
    items: list[Item], splits: tuple[tuple[str, float], ...], seed: int, mode: str = "stable"
) -> dict[str, list[Item]]:
    """Which split each image goes to; each split's images in walk order (see
    ``split_indices``)."""
    groups = split_indices(items, splits, seed, mode)
    return {name: [items[k] for k in members] for name, members in groups.items()}


def split_indices(
    items: Sequence[Item],
    splits: tuple[tuple[str, float], ...],
    seed: int,
    mode: str = "stable",
    store: Store = MEMORY,
) -> dict[str, MutableSequence[int]]:
    """The positions in ``items`` of each split's images, in walk order.

    ``stable`` (the default): an image's split depends only on (seed, its relative path,
    the ratios): sha256(seed, path) read as a number in [0, 1) falls into one split's share
    of that interval. Adding, removing or changing other images never moves it; a split's
    share of each class is its ratio up to chance (about sqrt(n) images in n). One pass,
    nothing held per image.

    ``exact``: within each class, images ranked by the same hash are cut at the rounded
    cumulative ratios, so every split gets its ratio of every class to within one image; but
    adding or removing images moves the cuts, and with them up to one image per cut and
    class into another split. Not stable: for one-off datasets only. It ranks each class in
    memory.
    """
    out = {name: store.numbers() for name, _ in splits}
    if mode == "stable":
        bounds, cum = [], 0.0
        for name, ratio in splits:
            cum += ratio
            bounds.append((cum, name))
        for k, item in enumerate(items):
            u = int.from_bytes(_split_key(seed, item.rel)[:8], "big") / 2**64
            out[next((name for top, name in bounds if u < top), bounds[-1][1])].append(k)
        return out
    by_class: dict[int, list[tuple[bytes, int]]] = {}
    for k, item in enumerate(items):
        by_class.setdefault(item.label, []).append((_split_key(seed, item.rel), k))
    chosen: dict[str, list[int]] = {name: [] for name, _ in splits}
    for members in by_class.values():
        ranked = [k for _, k in sorted(members)]
        n, cum, start = len(ranked), 0.0, 0
        for name, ratio in splits:
            cum += ratio
            stop = min(n, math.floor(n * cum + 0.5))
            chosen[name].extend(ranked[start:stop])
            start = stop
    for name, picked in chosen.items():
        out[name].extend(sorted(picked))  # walk order
    return out


def _split_key(seed: int, rel: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{rel}".encode("utf-8", "surrogateescape")).digest()


def balanced_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """Balanced ``[start, stop)`` ranges: shard i holds items round(n*i/k) to round(n*(i+1)/k)."""
    if shards < 1:
        shards = 1
    if shards > n:
        raise InputError(f"--shards {shards} is more than the {n} images found; ask for fewer")
    bounds = [round(n * i / shards) for i in range(shards + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
