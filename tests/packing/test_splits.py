"""pack --split: stable assignment (or exact cuts, opted into), and reading one split back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fixtures import run, smooth_rgb
from PIL import Image

import imgrec
from imgrec import InputError, PackOptions, pack
from imgrec.cli import cli
from imgrec.format.options import parse_split
from imgrec.packing.discover import Item
from imgrec.packing.sharding import assign_splits

SPLIT = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def items(counts: dict[int, int], prefix: str = "") -> list[Item]:
    from pathlib import Path

    return [
        Item(Path("x"), f"c{label}/{prefix}{i}.png", label, f"c{label}")
        for label, n in counts.items()
        for i in range(n)
    ]


def where(groups: dict[str, list[Item]]) -> dict[str, str]:
    return {item.rel: name for name, group in groups.items() for item in group}


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 19, 50, 101])
def test_exact_mode_holds_ratios_within_one_image_per_class(n):
    groups = assign_splits(items({0: n, 1: n + 3}), SPLIT, seed=0, mode="exact")
    for label, size in ((0, n), (1, n + 3)):
        for name, ratio in SPLIT:
            got = sum(1 for it in groups[name] if it.label == label)
            assert abs(got - size * ratio) < 1, (n, label, name, got)
    assert sum(len(g) for g in groups.values()) == 2 * n + 3


def test_no_image_ever_moves_when_others_are_added_or_removed():
    base = items({0: 600, 1: 400})
    before = where(assign_splits(base, SPLIT, seed=3))
    grown = base + items({0: 37, 1: 250, 2: 80}, prefix="new")
    after = where(assign_splits(grown, SPLIT, seed=3))
    assert {rel: after[rel] for rel in before} == before
    shrunk = [it for it in base if not it.rel.endswith(("1.png", "2.png", "7.png"))]
    after = where(assign_splits(shrunk, SPLIT, seed=3))
    assert {rel: before[rel] for rel in after} == after
    # The order of the input list does not matter: it is a function of path and seed.
    assert where(assign_splits(list(reversed(base)), SPLIT, seed=3)) == before
    assert where(assign_splits(base, SPLIT, seed=4)) != before


@pytest.mark.parametrize("seed", range(5))
def test_stable_splits_hold_their_ratios_up_to_chance(seed):
    sizes = {0: 1000, 1: 300, 2: 40, 3: 5}
    groups = assign_splits(items(sizes), SPLIT, seed=seed)
    for label, n in sizes.items():
        for name, ratio in SPLIT:
            got = sum(1 for it in groups[name] if it.label == label)
            sd = (n * ratio * (1 - ratio)) ** 0.5
            assert abs(got - n * ratio) <= 3 * sd + 1, (seed, label, name, got, n)


def test_exact_mode_is_stable_only_up_to_the_cut_points():
    base = items({0: 60, 1: 40})
    before = where(assign_splits(base, SPLIT, seed=3, mode="exact"))
    # More images in class 1 only: class 0 is untouched, class 1 barely moves.
    grown = base + items({1: 5}, prefix="new")
    after = where(assign_splits(grown, SPLIT, seed=3, mode="exact"))
    moved = [rel for rel in before if before[rel] != after[rel]]
    assert not [rel for rel in moved if rel.startswith("c0/")]
    assert len(moved) <= 5 * (len(SPLIT) - 1)
    # Removing images likewise leaves the others where they were, but for the cut points.
    shrunk = [it for it in base if not it.rel.endswith(("1.png", "2.png"))]
    after = where(assign_splits(shrunk, SPLIT, seed=3, mode="exact"))
    moved = [rel for rel in after if before[rel] != after[rel]]
    removed = len(base) - len(shrunk)
    assert len(moved) <= removed * (len(SPLIT) - 1)


def test_parse_split():
    assert parse_split("train=0.8, val=0.2") == (("train", 0.8), ("val", 0.2))
    with pytest.raises(InputError):
        parse_split("train=0.8,val")


def make_src(tmp_path, per_class=10):
    src = tmp_path / "src"
    for c, name in enumerate(["a", "b"]):
        (src / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(smooth_rgb(6, 7, c * 100 + i)).save(src / name / f"{i:02d}.png")
    return src


def test_pack_split_writes_named_shards_and_manifest(tmp_path):
    src = make_src(tmp_path)
    out = tmp_path / "out"
    opts = PackOptions(split=(("train", 0.7), ("val", 0.3)), split_mode="exact", shards=4)
    manifest = pack(src, out, opts).to_dict()
    files = sorted(p.name for p in out.glob("*.tfrecord"))
    assert files == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "val-00000-of-00001.tfrecord",
    ]
    assert manifest["splits"]["train"]["records"] == 14
    assert manifest["splits"]["val"]["labels"] == {"a": 3, "b": 3}
    assert {s["split"] for s in manifest["shards"]} == {"train", "val"}
    val = {
        fn.numpy() for _, fn in imgrec.dataset(out, split="val", with_filenames=True, labels=False)
    }
    train = {
        fn.numpy()
        for _, fn in imgrec.dataset(out, split="train", with_filenames=True, labels=False)
    }
    assert len(val) == 6 and len(train) == 14 and not val & train
    with pytest.raises(InputError, match="no split 'test'.*train, val"):
        imgrec.dataset(out, split="test")


def test_a_split_of_no_records_reads_as_an_empty_dataset(tmp_path):
    out = tmp_path / "out"
    opts = PackOptions(split=(("train", 0.9), ("val", 0.1)), split_mode="exact")
    manifest = pack(make_src(tmp_path, per_class=2), out, opts)
    assert manifest.splits is not None and manifest.splits["val"].records == 0  # no val shard
    ds = imgrec.dataset(out, split="val", batch_size=2, shuffle=True)
    assert list(ds) == [] and len(ds) == 0
    r = run("decode", out, "--split", "val", "--stats")  # the checked path (on_problem)
    assert r.exit_code == 0 and "Decoded 0 records" in r.stdout, r.output
    with pytest.raises(InputError, match="no split 'test' here .this dataset has train, val"):
        imgrec.dataset(out, split="test")


def test_split_cli_inspect_and_errors(tmp_path):
    src = make_src(tmp_path, per_class=5)
    out = tmp_path / "out"
    runner = CliRunner()
    split = ["--split", "train=0.6,val=0.4", "--split-mode", "exact"]
    r = runner.invoke(cli, ["pack", str(src), str(out), *split])
    assert r.exit_code == 0, r.output
    assert "split train: 6 images (a 3, b 3)" in r.stdout
    r = runner.invoke(cli, ["inspect", str(out), "--json"])
    assert json.loads(r.stdout)["splits"] == {"train": 6, "val": 4}
    r = runner.invoke(cli, ["pack", str(src), str(tmp_path / "o2"), "--split", "a=0.5,b=0.6"])
    assert r.exit_code == 1 and "add up to 1" in r.stderr
    r = runner.invoke(cli, ["pack", str(src), str(tmp_path / "o3"), "--split", "oops"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["decode", str(out), "--split", "val", "--stats", "--json"])
    assert json.loads(r.stdout)["records"] == 4


def split_of_each_file(out) -> dict[str, str]:
    from imgrec.format.framing import read_records
    from imgrec.format.schema import parse

    found = {}
    for shard in sorted(out.glob("*.tfrecord")):
        for _, data in read_records(shard):
            found[parse(data).filename] = shard.name.split("-")[0]
    return found


def test_repacking_with_more_and_fewer_images_moves_none_between_splits(tmp_path):
    src = make_src(tmp_path, per_class=40)
    split = PackOptions(split=(("train", 0.8), ("val", 0.2)))
    pack(src, tmp_path / "first", split)
    before = split_of_each_file(tmp_path / "first")
    for i in range(15):  # new images in one class, some old ones gone from the other
        Image.fromarray(smooth_rgb(6, 7, 500 + i)).save(src / "a" / f"new{i:02d}.png")
    for i in range(0, 40, 4):
        (src / "b" / f"{i:02d}.png").unlink()
    manifest = pack(src, tmp_path / "second", split)
    after = split_of_each_file(tmp_path / "second")
    assert {rel: before[rel] for rel in after if rel in before} == {
        rel: split for rel, split in after.items() if rel in before
    }
    assert len(after) == 80 + 15 - 10
    assert manifest.split_warnings() == []
    r = run("inspect", tmp_path / "second")
    assert "train: a " in r.stdout and "val: a " in r.stdout  # per split, per class


def test_a_split_far_from_its_ratio_is_warned_about():
    from imgrec.format.manifest import Manifest, SplitInfo
    from imgrec.format.stats import Stats

    stats = Stats(records=100)
    stats.labels.update({"cat": 100})
    m = Manifest("src", PackOptions(split=(("train", 0.5), ("val", 0.5))), ["cat"], [], 0,
                 [], [], stats, {"train": SplitInfo(0.5, 80, {"cat": 80}),
                                 "val": SplitInfo(0.5, 20, {"cat": 20})})  # fmt: skip
    assert m.split_warnings() == [
        "split train holds 80 of the 100 'cat' images (80%); 50% was asked",
        "split val holds 20 of the 100 'cat' images (20%); 50% was asked",
    ]
