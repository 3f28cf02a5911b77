"""SRC and OUT on an object store (s3://, through Beam's filesystems), against moto's
in-process S3: the Beam pack reads the images from the bucket, writes the shards into it,
and the result is byte for byte the local pack of the same files."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import fixtures
import pytest
from buckets import BUCKET, NAMES_SOURCE, S3_DIRECT, objects, s3_beam_pack
from fixtures import files_of, run, smooth_rgb
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.core import storage
from imgrec.core.errors import InputError, OutputError
from imgrec.packing import discover

pytestmark = pytest.mark.slow


def without_source(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k != "source"}


@pytest.mark.parametrize(
    "options",
    [{"shards": 3}, {"split": (("train", 0.7), ("val", 0.3)), "format": "raw", "seed": 5}],
    ids=["encoded", "raw-split"],
)
def test_bucket_to_bucket_is_byte_identical_to_the_local_pack(photos, s3, tmp_path, options):
    root, url = photos
    opts = PackOptions(**options)
    local = pack(root, tmp_path / "local", opts).to_dict()
    manifest = s3_beam_pack(url, f"s3://{BUCKET}/out", opts)
    assert without_source(manifest) == without_source(local)
    assert manifest["source"] == url
    assert manifest["labels"] == ["cat", "dog", "empty", "fish"]  # the folder marker counts
    assert manifest["ignored"] == local["ignored"] == 2  # notes.txt, the hidden folder once
    assert any(s["path"] == "dog/cut.png" for s in manifest["skipped"])
    stored = objects(s3, "out")
    expected = files_of(tmp_path / "local")
    assert stored.keys() == expected.keys()  # no journal, plan or entries left behind
    assert {k: v for k, v in stored.items() if k not in NAMES_SOURCE} == {
        k: v for k, v in expected.items() if k not in NAMES_SOURCE
    }
    assert json.loads(stored["manifest.json"]) == json.loads(json.dumps(manifest))


def test_local_source_into_a_bucket_and_back(photos, s3, tmp_path):
    root, url = photos
    opts = PackOptions(shards=2)
    pack(root, tmp_path / "local", opts)
    s3_beam_pack(root, f"s3://{BUCKET}/fromlocal", opts)
    assert objects(s3, "fromlocal") == files_of(tmp_path / "local")
    local = s3_beam_pack(url, tmp_path / "tolocal", opts)
    assert without_source(local) == without_source(
        json.loads(objects(s3, "fromlocal")["manifest.json"])
    )


def test_listing_walk_follows_the_local_walk_rules(photos, tmp_path):
    root, url = photos
    (root / "out").mkdir()  # OUT inside SRC is left out of both
    from_bucket = discover.walk(url, exclude=f"{url}/out")
    local = discover.walk(root, exclude=root / "out")
    assert from_bucket.labels == local.labels
    assert [i.rel for i in from_bucket.items] == [i.rel for i in local.items]
    assert [i.label for i in from_bucket.items] == [i.label for i in local.items]
    assert from_bucket.ignored == local.ignored
    assert all(i.path == f"{url}/{i.rel}" and i.stat is not None for i in from_bucket.items)


def test_from_list_of_urls(photos, s3, tmp_path):
    root, url = photos
    rows = (
        "path,label\n{0}cat/cat1.jpg,cat\nloose.png,misc\n{0}dog/gone.png,dog\n"
        "fish/./anim.gif,misc\n"
    )
    listing, local_listing = tmp_path / "list.csv", tmp_path / "local.csv"
    listing.write_text(rows.format(url + "/"))  # URLs and paths relative to SRC, mixed
    local_listing.write_text(rows.format(""))
    opts = PackOptions(from_list=str(listing), shards=2)
    pack(root, tmp_path / "local", PackOptions(from_list=str(local_listing), shards=2))
    manifest = s3_beam_pack(url, f"s3://{BUCKET}/listed", opts)
    assert manifest["records"] == 3 and manifest["labels"] == ["cat", "dog", "misc"]
    assert manifest["skipped"] == [
        {
            "path": "dog/gone.png",
            "reason": "missing: named by --from-list, but there is no such file",
        }
    ]
    assert {k: v for k, v in objects(s3, "listed").items() if k not in NAMES_SOURCE} == {
        k: v for k, v in files_of(tmp_path / "local").items() if k not in NAMES_SOURCE
    }
    listing.write_text(f"s3://{BUCKET}/elsewhere/x.png\n")
    with pytest.raises(InputError, match="outside SRC"):
        s3_beam_pack(url, f"s3://{BUCKET}/listed2", opts)


def test_a_non_empty_bucket_prefix_is_refused_and_overwrite_replaces(photos, s3):
    _, url = photos
    out = f"s3://{BUCKET}/out"
    s3.put_object(Bucket=BUCKET, Key="out/data-00000-of-00009.tfrecord", Body=b"old")
    with pytest.raises(OutputError, match="is not empty; pass --overwrite"):
        s3_beam_pack(url, out, PackOptions(shards=1))
    s3_beam_pack(url, out, PackOptions(shards=1, overwrite=True))
    assert sorted(objects(s3, "out")) == [
        "data-00000-of-00001.tfrecord",
        "data-00000-of-00001.tfrecord.idx",
        "dataset_info.json",  # TFDS metadata
        "features.json",
        "image.class.label.labels.txt",
        "manifest.json",
    ]  # the stale shard of the earlier pack is gone


def test_cli_dry_run_and_pack_with_urls(photos, s3):
    _, url = photos
    options = [x for option in S3_DIRECT for x in ("--beam-option", option)]
    out = f"s3://{BUCKET}/cli"
    r = run("pack", url, out, "--runner", "beam", *options, "--dry-run")
    assert r.exit_code == 0, r.output
    assert f"images would go to {out}" in r.output
    assert objects(s3, "cli") == {}
    r = run("pack", url + "/", out, "--runner", "beam", *options, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["manifest"] == f"{out}/manifest.json" and result["records"] == 13
    assert json.loads(objects(s3, "cli")["manifest.json"])["records"] == 13


def test_storage_folder_writes_are_whole_or_absent(s3):
    folder = storage.Folder(storage.location(f"s3://{BUCKET}/f/"))
    folder.write("a.json", b"{}")
    assert folder.files() == ["a.json"] and folder.read("a.json") == b"{}"
    with pytest.raises(RuntimeError), folder.open_write("b.bin") as f:
        f.write(b"half")
        raise RuntimeError("the network went away")
    del f
    gc.collect()  # a dropped writer may finish its upload now: under the temporary name only
    assert folder.size("b.bin") is None
    folder.remove_incomplete()
    assert folder.files() == ["a.json"]
    folder.delete("a.json")
    folder.delete("a.json")  # deleting what is gone is not an error
    assert folder.is_empty()


def test_missing_aws_credentials_fail_at_once(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = tmp_path / "out"
    r = run("pack", "s3://bucket/photos", out, "--runner", "beam")
    assert r.exit_code == 1
    assert r.output.startswith("Error: s3://bucket/photos: no AWS credentials found")
    assert "s3_access_key_id" in r.output and not out.exists()


def test_object_names_with_pattern_characters_are_packed(s3, tmp_path):
    # Only the SRC and OUT that users type are refused with * ? [ ]; the objects listed
    # under SRC may have any name.
    data = (tmp_path / "a.png").as_posix()
    Image.fromarray(smooth_rgb(12, 10, 1)).save(data)
    for key in ("odd/cat/a [1].png", "odd/cat/b*?.png"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=Path(data).read_bytes())
    manifest = s3_beam_pack(f"s3://{BUCKET}/odd", f"s3://{BUCKET}/oddout", PackOptions())
    assert manifest["records"] == 2 and manifest["skipped"] == []


def read_back(dataset: str) -> dict[str, object]:
    """Everything the read commands and imgrec.dataset say about a dataset."""
    inspected = json.loads(run("inspect", dataset, "--json").stdout)
    r = run("verify", dataset, "--json")
    assert r.exit_code == 0, r.output
    decoded = json.loads(run("decode", dataset, "--stats", "--json").stdout)
    records = {
        fn.numpy().decode(): (image.numpy().tobytes(), int(label))
        for image, label, fn in imgrec.dataset(dataset, with_filenames=True, channels=3)
    }
    shards = inspected.pop("shards")
    return {
        "summary": inspected,
        "shards": [(s["path"].rsplit("/", 1)[1], s["records"], s["bytes"]) for s in shards],
        "verified": json.loads(r.stdout)["records"],
        "stats": decoded["stats"],
        "records": records,
    }


def test_pack_to_a_bucket_then_read_it_back_like_a_local_copy(photos, s3, tmp_path):
    root, url = photos
    out = f"s3://{BUCKET}/read"
    s3_beam_pack(url, out, PackOptions(shards=2, split=(("train", 0.5), ("val", 0.5))))
    local = tmp_path / "copy"
    local.mkdir()
    for name, data in objects(s3, "read").items():
        (local / name).write_bytes(data)
    assert read_back(out) == read_back(str(local))
    train = imgrec.dataset(out, split="train", channels=3, resize=(8, 8), batch_size=2)
    assert len(train) == len(
        imgrec.dataset(local, split="train", channels=3, resize=(8, 8), batch_size=2)
    )
    assert (
        sum(int(b[0].shape[0]) for b in train) == imgrec.read_manifest(out).splits["train"].records
    )
    # Shard URLs and globs too; and a damaged shard in the bucket is found by verify.
    glob = f"{out}/val-*"
    assert json.loads(run("inspect", glob, "--json").stdout)["records"] == len(
        list(imgrec.dataset(glob))
    )
    s3.put_object(Bucket=BUCKET, Key="read/train-00000-of-00001.tfrecord", Body=b"\0" * 40)
    r = run("verify", out)
    assert r.exit_code == 1 and "train-00000-of-00001.tfrecord" in r.stdout


def test_shards_on_an_s3_http_endpoint_read_back_with_standard_settings(tree, moto_server):
    src, _ = tree
    out = f"s3://{BUCKET}/served"
    # Written with no endpoint option: AWS_ENDPOINT_URL alone points everything at it.
    fixtures.beam_pack(src, out, PackOptions(shards=2))
    assert sorted(objects(moto_server, "served")) == [
        "data-00000-of-00002.tfrecord",
        "data-00000-of-00002.tfrecord.idx",
        "data-00001-of-00002.tfrecord",
        "data-00001-of-00002.tfrecord.idx",
        "dataset_info.json",  # TFDS metadata
        "features.json",
        "image.class.label.labels.txt",
        "manifest.json",
    ]
    assert run("verify", out).exit_code == 0
    names = {fn.numpy().decode() for _, fn in imgrec.dataset(out, labels=False,
                                                            with_filenames=True)}  # fmt: skip
    assert len(names) == 13 == json.loads(run("inspect", out, "--json").stdout)["records"]
