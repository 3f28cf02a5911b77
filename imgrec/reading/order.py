"""The order records are read in, for readers that index (``RecordSource`` with PyTorch, or
any loop): ``RecordSampler``, deterministic from a seed and an epoch, split over ranks so
that each record goes to exactly one rank per epoch, and resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np

from ..core.errors import ImgrecError


class RecordSampler:
    """The record indices one rank reads in one epoch: a permutation of ``range(n)`` drawn
    from ``(seed, epoch)`` (or ``range(n)`` itself without ``shuffle``), of which rank ``r``
    of ``ranks`` takes every ``ranks``-th from the ``r``-th. Every record goes to exactly
    one rank; ranks get ``n // ranks`` or one more (PyTorch's ``DistributedSampler``
    repeats records instead, to give every rank the same count).

    ``start`` skips the first ``start`` indices of this rank's order (``steps *
    batch_size`` to resume after ``steps`` batches): the rest come in the same order as
    they would have. It applies to the epoch set when iterating, until ``set_epoch`` moves
    to another. Works as a PyTorch ``Sampler`` (``DataLoader(source, sampler=...)``); call
    ``set_epoch`` each epoch as with ``DistributedSampler``.
    """

    def __init__(
        self,
        source: Sized | int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        ranks: int = 1,
        epoch: int = 0,
        start: int = 0,
    ) -> None:
        n = source if isinstance(source, int) else len(source)
        if ranks < 1 or not 0 <= rank < ranks:
            raise ImgrecError(f"rank={rank}, ranks={ranks}: want 0 <= rank < ranks")
        if n < 0 or start < 0 or seed < 0 or epoch < 0:
            raise ImgrecError("n, start, seed and epoch are counts: 0 or more")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.ranks = rank, ranks
        self.epoch, self.start = epoch, start

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (from its start, unless it is the epoch resumed)."""
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def indices(self) -> np.ndarray:
        """This rank's whole order for the epoch, ``start`` included (int64)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        return order[self.rank :: self.ranks].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :].tolist())

    def __len__(self) -> int:
        return max(0, len(range(self.rank, self.n, self.ranks)) - self.start)
