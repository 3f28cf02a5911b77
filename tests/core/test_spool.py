"""Sequences on disk (``spool``) behave as the lists they stand for, so a plan or a walk kept
on disk is the one kept in memory: the same items, in the same order."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pytest

from imgrec import PackOptions
from imgrec.core import spool, storage
from imgrec.packing.discover import Item, decode_item, encode_item, walk
from imgrec.packing.sharding import plan_shards


@pytest.fixture
def disk(tmp_path):
    store = spool.Disk(tmp_path)
    yield store
    store.close()


@pytest.mark.parametrize("count", [1_000, 100_000])  # held in memory; moved into its file
def test_numbers_are_a_list_of_integers_on_disk(disk, count):
    numbers = disk.numbers(4)
    expected = [random.Random(1).randrange(2**32) for _ in range(count)]
    numbers.extend(expected)
    assert (count * 4 > spool.HELD) == any(disk.folder.glob("*.n"))
    assert len(numbers) == len(expected)
    assert list(numbers) == expected
    assert numbers[0] == expected[0] and numbers[-1] == expected[-1]
    assert numbers[170:180] == expected[170:180]
    assert list(numbers.iter_from(count - 3)) == expected[-3:]  # type: ignore[attr-defined]
    numbers[5] = 7
    assert numbers[5] == 7
    with pytest.raises(IndexError):
        numbers[len(expected)]


def test_bytes_read_back_in_order_and_by_position(disk):
    blobs = disk.blobs()
    expected = [bytes([k % 256]) * (k % 7) for k in range(2_000)]  # empty ones too
    for data in expected:
        spool.append(blobs, data)
    assert list(blobs) == expected
    assert blobs[0] == b"" and blobs[6] == expected[6] and blobs[-1] == expected[-1]


def test_a_shuffle_on_disk_is_the_shuffle_in_memory(disk):
    # The shard plan's permutation must not depend on where the positions are kept.
    on_disk = disk.numbers()
    on_disk.extend(range(5_000))
    in_memory = list(range(5_000))
    random.Random("7/train").shuffle(on_disk)  # type: ignore[arg-type]
    random.Random("7/train").shuffle(in_memory)
    assert list(on_disk) == in_memory != list(range(5_000))


def test_values_read_back_in_order_and_by_position(disk):
    items = [
        Item(Path(f"/src/c{k % 3}/ü {k}.jpg"), f"c{k % 3}/ü {k}.jpg", k % 3, f"c{k % 3}", (k, 9))
        for k in range(300)
    ] + [Item("s3://b/src/x y.png", "x y.png", -1, "", None)]
    kept = disk.values(encode_item, decode_item)
    for item in items:
        spool.append(kept, item)
    assert len(kept) == len(items)
    assert list(kept) == items
    assert kept[0] == items[0] and kept[-1] == items[-1] and kept[123] == items[123]
    assert kept[10:13] == items[10:13]


def test_the_external_sort_merges_runs_to_the_sorted_order(disk, monkeypatch):
    monkeypatch.setattr(spool, "RUN", 7)  # many runs
    values = [f"{random.Random(k).choice(['a', 'a-b', 'a/b', 'b'])}/{k}" for k in range(200)]

    def key(v: str) -> list[str]:
        return v.split("/")

    merged = list(disk.sort(values, key, lambda v: v, lambda v: v))
    assert merged == sorted(values, key=key)


def test_a_store_leaves_no_files(tmp_path):
    store = spool.Disk(tmp_path)
    store.numbers().append(1)
    store.close()
    dropped = spool.Disk(tmp_path)
    dropped.numbers().append(1)
    del dropped
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def _items(n: int) -> list[Item]:
    return [Item(Path(f"/src/c{k % 4}/{k:05d}.jpg"), f"c{k % 4}/{k:05d}.jpg", k % 4, f"c{k % 4}")
            for k in range(n)]  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"shuffle": False, "shards": 3},
        {"split": (("train", 0.7), ("val", 0.2), ("test", 0.1)), "seed": 5},
        {"split": (("train", 0.5), ("val", 0.5)), "split_mode": "exact", "shards": 4},
    ],
    ids=["shuffled", "in-order", "stable-split", "exact-split"],
)
def test_a_plan_kept_on_disk_is_the_plan_in_memory(disk, options):
    items = _items(1_000)
    estimate = [1_000 + 37 * (k % 11) for k in range(len(items))]
    opts = PackOptions(shard_size=100_000, **options)
    kept = disk.values(encode_item, decode_item)
    for item in items:
        spool.append(kept, item)
    sizes = disk.numbers(8)
    sizes.extend(estimate)
    in_memory = plan_shards(items, estimate, opts)
    on_disk = plan_shards(kept, sizes, opts, disk)
    assert len(in_memory) > 1
    assert [(s.name, s.split, list(s.items)) for s in on_disk] == [
        (s.name, s.split, list(s.items)) for s in in_memory
    ]


def test_a_bucket_listing_walked_on_disk_is_the_walk_in_memory(disk, monkeypatch):
    # Keys as a store lists them (byte order), which is not the walk's path order: "a-b/"
    # sorts before "a/" by bytes, after it by path components.
    keys = ["a-b/1.jpg", "a/2.jpg", "a/b/3.jpg", "a/.hidden/4.jpg", ".git/x", "b/", "c.jpg",
            "out/shard.tfrecord", "a/z.jpg", "b-c/5.png"]  # fmt: skip
    keys += [f"d/{k:04d}.jpg" for k in range(60)]
    listed = [(k, (len(k), 1)) for k in sorted(keys)]
    monkeypatch.setattr(storage, "iter_tree", lambda url: iter(listed))
    monkeypatch.setattr(spool, "RUN", 5)
    src, out = "s3://bucket/src", "s3://bucket/src/out"
    in_memory = walk(src, exclude=out)
    on_disk = walk(src, exclude=out, store=disk)
    assert list(on_disk.items) == list(in_memory.items)
    assert [i.rel for i in in_memory.items][:4] == ["a/2.jpg", "a/b/3.jpg", "a/z.jpg", "a-b/1.jpg"]
    assert (on_disk.labels, on_disk.ignored) == (in_memory.labels, in_memory.ignored)
    assert on_disk.labels == ["a", "a-b", "b", "b-c", "d"]


def _local_tree(root: Path) -> None:
    """Names whose path order is not their byte order, a folder reached twice, a hidden
    file, a broken link."""
    for rel in ["a/2.jpg", "a/b/3.jpg", "a/z.jpg", "a-b/1.jpg", "c.jpg", "a/.hidden.jpg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "0-first").symlink_to(root / "a-b", target_is_directory=True)
    (root / "a" / "gone.jpg").symlink_to(root / "nowhere.jpg")


def test_a_local_walk_streamed_to_disk_is_the_walk_in_memory_and_in_path_order(disk, tmp_path):
    src = tmp_path / "src"
    _local_tree(src)
    in_memory = walk(src)
    on_disk = walk(src, store=disk)
    assert isinstance(on_disk.items, spool.Values)
    assert list(on_disk.items) == list(in_memory.items)
    rels = [i.rel for i in in_memory.items]
    # "a-b" is reached twice (through the "0-first" link too): walked where it comes first
    assert rels == ["0-first/1.jpg", "a/2.jpg", "a/b/3.jpg", "a/z.jpg", "c.jpg"]
    assert rels == sorted(rels, key=lambda r: r.split("/"))
    assert (on_disk.labels, on_disk.ignored, on_disk.broken_links) == (
        in_memory.labels, in_memory.ignored, in_memory.broken_links)  # fmt: skip
    assert in_memory.ignored == 2 and in_memory.broken_links == ["a/gone.jpg"]


def test_a_src_that_cannot_be_listed_is_one_clear_error(tmp_path, monkeypatch):
    import errno
    import os

    from imgrec.core.errors import InputError

    src = tmp_path / "src"
    _local_tree(src)
    scandir = os.scandir

    def refused(path):  # type: ignore[no-untyped-def]
        if Path(path) == src:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)
    with pytest.raises(InputError, match="cannot read this folder .Permission denied.") as e:
        walk(src)
    assert str(src) in str(e.value)


def test_a_store_closes_and_goes_away_when_its_disk_is_full(tmp_path, monkeypatch):
    import errno
    import io

    class Full(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def seek(self, offset, whence=0):  # type: ignore[no-untyped-def]
            return 0

        def write(self, data):  # type: ignore[no-untyped-def]
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "open", lambda path, mode: io.BufferedRandom(Full()), raising=False)
    store = spool.Disk(tmp_path)
    spool.append(store.blobs(), b"still in the buffer")
    store.close()  # its flush fails: the files were to be thrown away all the same
    assert list(tmp_path.iterdir()) == []
