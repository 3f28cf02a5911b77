"""RecordSource in the frameworks users train with: a PyTorch DataLoader with 2 workers,
samplers over 4 ranks that give every record to one rank, Grain's global shuffle, shards
and resumption; and RecordSampler's order: deterministic, split, resumable.

torch and grain are imported in the tests that use them: importing torch takes 1.5 s,
which every run of the fast set would pay at collection."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import imgrec
from imgrec import PackOptions, pack


@pytest.fixture(scope="module")
def packed(tmp_path_factory, shared_tree) -> dict[str, Path]:
    """The test tree in 3 shards (13 records); the same without its loose image (12: a
    count 4 ranks divide); and resized to 32 x 32 for batches."""
    src, _ = shared_tree
    root = tmp_path_factory.mktemp("frameworks")
    out = {"13": root / "13", "12": root / "12", "batches": root / "batches"}
    pack(src, out["13"], PackOptions(shards=3))
    twelve = root / "src12"
    shutil.copytree(src, twelve)
    (twelve / "loose.png").unlink()
    pack(twelve, out["12"], PackOptions(shards=3))
    pack(src, out["batches"], PackOptions(shards=2, resize=(32, 32), channels="3"))
    return out


def _everyone(source: imgrec.RecordSource) -> list[str]:
    return sorted(source[i]["filename"] for i in range(len(source)))


@pytest.mark.parametrize("n", [0, 3, 12, 13, 101])
def test_the_sampler_gives_each_record_to_one_rank(n):
    for shuffle in (False, True):
        parts = [list(imgrec.RecordSampler(n, rank=r, ranks=4, shuffle=shuffle)) for r in range(4)]
        assert sorted(i for p in parts for i in p) == list(range(n))  # complete, disjoint
        assert [len(p) for p in parts] == [
            len(imgrec.RecordSampler(n, rank=r, ranks=4)) for r in range(4)
        ]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_the_sampler_order_is_the_seeds_and_resumes_mid_epoch():
    a = imgrec.RecordSampler(1000, seed=7, rank=1, ranks=2)
    assert list(a) == list(imgrec.RecordSampler(1000, seed=7, rank=1, ranks=2))
    assert list(a) != list(imgrec.RecordSampler(1000, seed=8, rank=1, ranks=2))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and len(list(a)) == len(first) == 500
    resumed = imgrec.RecordSampler(1000, seed=7, rank=1, ranks=2, epoch=1, start=96)
    assert list(resumed) == list(a)[96:] and len(resumed) == 500 - 96
    resumed.set_epoch(2)  # the next epoch starts from its beginning
    a.set_epoch(2)
    assert list(resumed) == list(a) and len(resumed) == 500
    with pytest.raises(imgrec.ImgrecError, match="rank=4, ranks=4"):
        imgrec.RecordSampler(10, rank=4, ranks=4)


@pytest.mark.slow
def test_a_dataloader_with_two_workers_and_four_ranks_reads_each_record_once(packed):
    from torch.utils.data import DataLoader

    source = imgrec.RecordSource(packed["13"])
    seen = []
    for rank in range(4):
        sampler = imgrec.RecordSampler(source, rank=rank, ranks=4, seed=3)
        loader = DataLoader(source, batch_size=None, sampler=sampler, num_workers=2)
        names = [example["filename"] for example in loader]
        assert names == [source[i]["filename"] for i in sampler]  # in the sampler's order
        seen += names
    assert sorted(seen) == _everyone(source)


@pytest.mark.slow
def test_distributed_sampler_over_four_ranks_is_disjoint_and_complete(packed):
    """With a count the ranks divide; with another, DistributedSampler itself repeats
    records to even the ranks (RecordSampler does not: the test above)."""
    from torch.utils.data import DataLoader, DistributedSampler

    source = imgrec.RecordSource(packed["12"])
    seen = []
    for rank in range(4):
        sampler = DistributedSampler(source, num_replicas=4, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(source, batch_size=None, sampler=sampler, num_workers=2)
        seen += [example["filename"] for example in loader]
    assert len(seen) == 12 and sorted(seen) == _everyone(source)


@pytest.mark.slow
def test_batches_of_float_tensors(packed):
    import torch
    from torch.utils.data import DataLoader

    source = imgrec.RecordSource(packed["batches"])
    loader = DataLoader(source, batch_size=4, shuffle=True, num_workers=2)
    batches = list(loader)
    assert sum(len(b["filename"]) for b in batches) == len(source) == 13
    first = batches[0]
    assert first["image"].shape == (4, 32, 32, 3) and first["image"].dtype == torch.float32
    assert first["label"].dtype == torch.int64
    assert 0 <= float(first["image"].min()) and float(first["image"].max()) <= 1


def _grain(source: imgrec.RecordSource, seed: int) -> Any:
    import grain

    return grain.MapDataset.source(source).shuffle(seed=seed)


def test_grain_shuffles_globally_and_shards(packed):
    source = imgrec.RecordSource(packed["13"])
    shuffled = _grain(source, 5)
    names = [example["filename"] for example in shuffled]
    assert sorted(names) == _everyone(source)
    assert names != [source[i]["filename"] for i in range(len(source))]  # not the file order
    assert names == [example["filename"] for example in _grain(source, 5)]
    parts = [[example["filename"] for example in shuffled[rank::4]] for rank in range(4)]
    assert sorted(sum(parts, [])) == _everyone(source)  # disjoint and complete
    assert [len(p) for p in parts] == [4, 3, 3, 3]


def test_grain_resumes_mid_epoch_with_the_same_remaining_order(packed):
    source = imgrec.RecordSource(packed["13"])
    whole = [example["filename"] for example in _grain(source, 11).to_iter_dataset()]
    it = iter(_grain(source, 11).to_iter_dataset())
    head = [next(it)["filename"] for _ in range(5)]
    state = it.get_state()
    again = iter(_grain(source, 11).to_iter_dataset())
    again.set_state(state)
    assert head + [example["filename"] for example in again] == whole
    assert np.unique(whole).size == len(source)


@pytest.mark.slow
def test_random_crops_in_dataloader_workers_are_the_epochs_own(packed):
    """Workers draw the crops the source draws for (seed, epoch, index): the same as a read
    in this process, and new each epoch once set_epoch moves it."""
    from torch.utils.data import DataLoader

    source = imgrec.RecordSource(packed["13"], resize=(24, 24), crop="random", seed=3)
    sampler = imgrec.RecordSampler(source, seed=3)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        source.set_epoch(epoch)
        loader = DataLoader(source, batch_size=None, sampler=sampler, num_workers=2)
        images = [example["image"].numpy() for example in loader]
        assert all(np.array_equal(a, source.get(i, epoch)["image"])
                   for a, i in zip(images, sampler, strict=True))  # fmt: skip
        epochs.append({i: a for a, i in zip(images, sampler, strict=True)})
    assert sum(not np.array_equal(epochs[0][i], epochs[1][i]) for i in epochs[0]) > 6


def test_grain_reads_each_epochs_random_crops(packed):
    """Grain's map over the indices, one epoch at a time, with get(i, epoch)."""
    import functools

    import grain

    source = imgrec.RecordSource(packed["13"], resize=(24, 24), crop="random", seed=3)
    seen = []
    for epoch in (0, 1):
        ds = grain.MapDataset.range(len(source)).shuffle(seed=epoch)
        ds = ds.map(functools.partial(source.get, epoch=epoch))
        seen.append({example["filename"]: example["image"] for example in ds})
        assert len(seen[-1]) == len(source)
    assert seen[0].keys() == seen[1].keys()
    assert sum(not np.array_equal(seen[0][k], seen[1][k]) for k in seen[0]) > 6
