# Development: `pytest -m "not slow"` runs the fast set (under a minute; run it while you
# work); `pytest` runs the whole suite, slow tests included (what CI runs). Mark a test
# `@pytest.mark.slow` when it takes seconds: subprocesses that import TensorFlow, the example
# scripts, Beam pipelines, object stores, killed or interrupted packs.
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fixtures import make_tree  # noqa: E402


@pytest.fixture(autouse=True)
def _one_process_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, packs run on one process unless a test asks for more (workers=,
    --workers): a pool of workers for every small test tree would add half to the fast set's
    time. The default itself (one per core) is tested in tests/cli/test_cli.py; packs run as
    subprocesses keep it."""
    monkeypatch.setattr("imgrec.format.options.default_workers", lambda: 1)


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_the_session(tmp_path_factory: pytest.TempPathFactory):
    """Temporary files of this process and its children go to the session's folder, which
    pytest removes with its old runs: Beam's runners leave empty folders in the temporary
    folder after each pipeline (8 for a pack), which would pile up in /tmp."""
    folder = str(tmp_path_factory.mktemp("tmp"))
    before, tempfile.tempdir = tempfile.tempdir, folder
    env_before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = folder
    yield
    tempfile.tempdir = before
    if env_before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = env_before


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    src = tmp_path / "src"
    return src, make_tree(src)


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) by relative path: its sha256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def shared_tree(tmp_path_factory: pytest.TempPathFactory):
    """The ``tree`` images, made once for the session: ONLY for tests that never change them.

    The files are checked at the end of the session: a test that changed one fails there."""
    src = tmp_path_factory.mktemp("shared") / "src"
    files = make_tree(src)
    before = _digest(src)
    yield src, files
    assert _digest(src) == before, f"a test changed the shared tree {src}"


@pytest.fixture(scope="session")
def packed_tree(
    shared_tree: tuple[Path, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory
):
    """``packed_tree(**options)``: the shared tree packed with ``PackOptions(**options)``, once
    per set of options for the whole session, as (out, the manifest ``pack`` returned, as a
    dict). READ ONLY: a test that modifies a dataset must pack its own under ``tmp_path``.

    Each dataset is checked at the end of the session: a test that changed it fails there."""
    from imgrec import PackOptions, pack

    src, _ = shared_tree
    made: dict[PackOptions, tuple[Path, dict[str, Any]]] = {}
    digests: dict[Path, dict[str, str]] = {}

    def packed(**options: Any) -> tuple[Path, dict[str, Any]]:
        opts = PackOptions(**options)  # format="encoded" and no format: one dataset
        if opts not in made:
            out = tmp_path_factory.mktemp("packed") / "out"
            made[opts] = out, pack(src, out, opts).to_dict()
            digests[out] = _digest(out)
        return made[opts]

    yield packed
    changed = [str(out) for out, digest in digests.items() if _digest(out) != digest]
    assert not changed, f"a test changed a shared packed dataset: {changed}"


@pytest.fixture
def moto_server(monkeypatch):
    """A real S3 HTTP endpoint on 127.0.0.1, reached the standard way (AWS_ENDPOINT_URL)."""
    import socket

    import boto3
    from buckets import BUCKET
    from moto.server import ThreadedMotoServer

    from imgrec.core import storage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }.items():
            monkeypatch.setenv(key, value)
        storage.forget_clients()
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        storage.forget_clients()
        server.stop()


@pytest.fixture
def gcs_server(monkeypatch):
    """A GCS JSON API endpoint on 127.0.0.1 (gcp-storage-emulator, in memory), reached the
    standard way (STORAGE_EMULATOR_HOST). Beam is told its credential lookup found nothing
    (what it concludes on a machine without credentials, after retrying for about 20 s),
    so its clients are anonymous, as the emulator wants."""
    import socket

    from apache_beam.internal.gcp import auth
    from buckets import BUCKET
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage as gcs_storage

    from imgrec.core import storage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
        monkeypatch.setattr(auth._Credentials, "_credentials", None)
        storage.forget_clients()
        yield gcs_storage.Client.create_anonymous_client().bucket(BUCKET)
    finally:
        storage.forget_clients()
        server.stop()
