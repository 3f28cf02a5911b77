"""An S3 endpoint that is down or frozen: every command ends within IMGREC_S3_DEADLINE (plus
one call's timeout) with one ``Error:`` line naming the URL, and a pack into a bucket that
does not exist is one ``Error:`` line too."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from buckets import BUCKET
from fixtures import make_tree
from processes import cli, one_error_line

pytestmark = pytest.mark.slow

DEADLINE = 3  # seconds: each test ends in a few


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def frozen() -> Iterator[int]:
    """A port that accepts connections and never answers (a server stopped with SIGSTOP)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)  # the kernel completes connections into the backlog: none is read
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "IMGREC_S3_DEADLINE": str(DEADLINE),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }.items():
        monkeypatch.setenv(key, value)


COMMANDS = {
    "inspect": ("inspect", "s3://b/shards"),
    "verify": ("verify", "s3://b/shards"),
    "decode": ("decode", "s3://b/shards", "--stats"),
    "decode-glob": ("decode", "s3://b/shards/data-*", "--stats"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("endpoint", ["frozen", "dead"])
def test_an_unreachable_endpoint_is_one_error_naming_the_url(
    request, aws_env, monkeypatch, tmp_path, command, endpoint
):
    port = request.getfixturevalue("frozen") if endpoint == "frozen" else free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    args = COMMANDS[command]
    began = time.monotonic()
    r = cli(*args, cwd=tmp_path, timeout=60)
    took = time.monotonic() - began
    assert r.returncode == 1, r.stderr
    line = one_error_line(r.stderr)
    assert line.startswith(f"Error: {args[1].rstrip('*')}"), line
    assert f"no answer from http://127.0.0.1:{port} within {DEADLINE} s" in line
    assert "IMGREC_S3_DEADLINE=SECONDS" in line
    assert took < 30, took  # the deadline, one timeout and TensorFlow's import


def test_the_library_raises_the_error_too(aws_env, monkeypatch):
    import imgrec
    from imgrec.core import storage
    from imgrec.core.errors import InputError

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    storage.forget_clients()
    began = time.monotonic()
    with pytest.raises(InputError, match=r"s3://b/shards/manifest.json: cannot read it \(no"):
        imgrec.dataset("s3://b/shards")
    assert time.monotonic() - began < DEADLINE + 5
    storage.forget_clients()


class FreezingProxy:
    """Relays 127.0.0.1:port to a server until the answer to a GET of a shard has begun;
    from then on it relays nothing (open connections hang, new ones are never answered)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.port = int(self.server.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.held.append(client)
            if not self.frozen.is_set():
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self.held.append(upstream)
                state = {"shard": False}
                threading.Thread(
                    target=self._pipe, args=(client, upstream, state, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pipe, args=(upstream, client, state, False), daemon=True
                ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, state: dict, asks: bool) -> None:
        try:
            while not self.frozen.is_set():
                data = src.recv(65536)
                if not data:
                    return
                if asks and b"GET /" in data and b".tfrecord " in data.split(b"\r\n")[0]:
                    state["shard"] = True
                if not asks and state["shard"]:  # the first bytes of a shard, then nothing
                    dst.sendall(data[:300])
                    self.frozen.set()
                    return
                dst.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        for s in [self.server, *self.held]:
            s.close()


def test_a_server_that_freezes_in_the_middle_of_a_decode(aws_env, monkeypatch, tmp_path):
    """The server stops answering once the first bytes of a shard have come: the reads
    under way and every one after are bounded as the first is."""
    import boto3
    from moto.server import ThreadedMotoServer

    import imgrec
    from imgrec import PackOptions
    from imgrec.core import storage

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    proxy = FreezingProxy(port)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        storage.forget_clients()
        make_tree(tmp_path / "src")
        out = f"s3://{BUCKET}/{tmp_path.name}"  # moto keeps what other tests left
        imgrec.pack(tmp_path / "src", out, PackOptions(shards=1, runner="DirectRunner"))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        began = time.monotonic()
        r = cli("decode", out, "--stats", cwd=tmp_path, timeout=60)
        took = time.monotonic() - began
        assert proxy.frozen.is_set()  # the shard's answer had begun
        assert r.returncode == 1, r.stderr
        line = one_error_line(r.stderr)
        assert line.startswith(f"Error: {out}/"), line  # the shard, or what decode reads next
        assert "IMGREC_S3_DEADLINE=SECONDS" in line, line
        assert took < 30, took
    finally:
        proxy.close()
        storage.forget_clients()
        server.stop()


def test_a_pack_into_a_missing_bucket_prints_one_error_line(aws_env, monkeypatch, tmp_path):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        make_tree(tmp_path / "src")
        before = sorted(tmp_path.rglob("*"))
        options = ("direct_num_workers=1", "direct_running_mode=in_memory")
        r = cli(
            "pack",
            tmp_path / "src",
            "s3://no-such-bucket/out",
            "--runner",
            "beam",
            *[x for option in options for x in ("--beam-option", option)],
            cwd=tmp_path,
            timeout=120,
        )
        assert r.returncode == 1, r.stderr
        line = one_error_line(r.stderr)
        assert line.startswith("Error: s3://no-such-bucket/out"), line
        assert "the bucket no-such-bucket does not exist" in line, line
        assert sorted(tmp_path.rglob("*")) == before  # nothing left behind
    finally:
        server.stop()


def test_an_endpoint_that_comes_up_within_the_deadline_is_waited_for(aws_env, monkeypatch):
    """A refused connection is retried with growing waits (0.5, 1, 2 s, ...): a server that
    starts again within the deadline is read."""
    import boto3
    from moto.server import ThreadedMotoServer

    from imgrec.core import storage

    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("IMGREC_S3_DEADLINE", "20")
    storage.forget_clients()
    first = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    first.start()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    boto3.client("s3").put_object(Bucket=BUCKET, Key="late/x", Body=b"12345")
    assert storage.size(f"s3://{BUCKET}/late/x") == 5
    first.stop()  # moto's state stays in this process for the next server
    again = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    later = threading.Timer(2.0, again.start)
    began = time.monotonic()
    later.start()
    try:
        assert storage.size(f"s3://{BUCKET}/late/x") == 5
        assert 2.0 <= time.monotonic() - began < 10
    finally:
        later.join()
        storage.forget_clients()
        again.stop()
