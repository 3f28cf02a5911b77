"""Fixtures of the pack-side tests: sources with an image that fails to load, the odd
corpus, and an in-process S3 bucket with the test tree in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from buckets import BUCKET
from corpus import damaged, make_corpus
from fixtures import make_tree

from imgrec.core import storage


@pytest.fixture(scope="module")
def odd_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("odd") / "src"
    make_tree(src, per_class=4)
    make_corpus(src / "corpus")
    damaged(src / "damaged")
    return src


@pytest.fixture
def src(tree):
    pytest.importorskip("apache_beam")
    root, files = tree
    # An image that passes the header-only scan but fails to load: it is skipped by the
    # worker, so the per-shard skip lists are exercised too.
    data = files["cat0"].read_bytes()
    (root / "dog" / "cut.png").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture
def s3(monkeypatch):
    """An in-process S3 (moto) with the bucket made; imported here, not for every test."""
    import boto3
    import moto

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        storage.forget_clients()  # no client made outside this mock
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def photos(tree, s3):
    """The test tree locally and under s3://imgrec-test/photos, plus what a bucket may hold
    besides images: a hidden folder, a folder marker for an empty class, and a skipped file."""
    root, files = tree
    data = files["cat0"].read_bytes()
    (root / "dog" / "cut.png").write_bytes(data[: len(data) // 2])  # fails in the worker
    (root / ".cache").mkdir()
    (root / ".cache" / "a.png").write_bytes(data)
    (root / ".cache" / "b.png").write_bytes(data)
    (root / "empty").mkdir()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(
                Bucket=BUCKET, Key=f"photos/{path.relative_to(root)}", Body=path.read_bytes()
            )
    s3.put_object(Bucket=BUCKET, Key="photos/empty/", Body=b"")
    return root, f"s3://{BUCKET}/photos"
