"""Writes are atomic per attempt: two writers of one file (a task a cluster retries while
its first attempt still runs) never share a temporary file, and the file ends whole, as one
of them wrote it."""

from __future__ import annotations

import threading

from imgrec.core.storage import Folder, atomic_file


def test_two_attempts_at_one_file_never_mix(tmp_path):
    target = tmp_path / "data-00000-of-00001.tfrecord"
    both_open = threading.Barrier(2, timeout=30)
    payloads = [bytes([n]) * (1 << 20) for n in (1, 2)]
    errors: list[BaseException] = []

    def attempt(payload: bytes) -> None:
        try:
            with atomic_file(target) as f:
                f.write(payload[: len(payload) // 2])
                both_open.wait()  # both temporary files exist at once, both half written
                f.write(payload[len(payload) // 2 :])
                f.flush()
                both_open.wait()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert target.read_bytes() in payloads
    assert not list(tmp_path.glob(".*.incomplete"))


def test_the_temporary_names_are_the_attempts_own_and_cleaned_up(tmp_path):
    folder = Folder(tmp_path)
    seen = []
    with folder.open_write("a.json") as f, folder.open_write("a.json") as g:
        seen = sorted(p.name for p in tmp_path.glob(".a.json.*.incomplete"))
        f.write(b"first")
        g.write(b"second")
    assert len(seen) == 2  # one each
    assert (tmp_path / "a.json").read_bytes() == b"first"  # the last renamed wins, whole
    assert not list(tmp_path.glob(".*.incomplete"))
    (tmp_path / ".b.json.123-abcd.incomplete").write_bytes(b"a killed run's")
    folder.remove_incomplete()
    assert not list(tmp_path.glob(".*.incomplete"))
