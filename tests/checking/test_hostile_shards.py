"""Hostile shards: damaged framing, huge lengths, truncation, random and mutated bytes give
only clean errors in every reader."""

from __future__ import annotations

import json
import struct

import pytest
from fixtures import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import record

from imgrec.checking.integrity import verify
from imgrec.core.errors import ShardError
from imgrec.format.framing import frame, frames, read_records
from imgrec.format.record_check import check_record
from imgrec.format.schema import SchemaError, parse


def test_damaged_framing_huge_length_and_truncation(tmp_path):
    good = [record(filename=f"f{i}") for i in range(3)]
    huge = struct.pack("<Q", 2**62)
    shard = tmp_path / "huge.tfrecord"
    shard.write_bytes(frame(good[0]) + huge + frame(good[1])[8:])
    found = list(frames(shard))
    assert [f.problem for f in found] == [None, "length CRC mismatch: the rest is unreadable"]
    r = run("decode", shard, "--stats", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["records"] == 1
    r = run("inspect", shard)
    assert r.exit_code == 1 and f"{shard}, record 1 (byte offset" in r.stderr
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(b"".join(frame(g) for g in good)[:-7])
    assert "runs past the end" in str(list(frames(cut))[-1].problem)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes_never_crash_the_readers(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "x.tfrecord"
    path.write_bytes(data)
    for f in frames(path):
        if f.data is not None and f.problem is None:
            check_record(f.data)
    try:
        for _, payload in read_records(path):
            parse(payload)
    except (ShardError, SchemaError):
        pass
    try:
        parse(data)
    except SchemaError:
        pass
    check_record(data)


VALID = b"".join(frame(record(filename=f"r{i}")) for i in range(3))


@pytest.mark.slow  # 300 examples; test_fuzz_random_bytes_never_crash_the_readers stays fast
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(VALID)))  # fmt: skip
def test_fuzz_mutated_shards_give_only_clean_errors(tmp_path_factory, flips, cut):
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    path = tmp_path_factory.mktemp("fz") / "x.tfrecord"
    path.write_bytes(bytes(data[:cut]))
    for f in frames(path):
        if f.data is not None:
            check_record(f.data)  # returns a problem, never raises
    report = verify([str(path)])
    assert report.records <= 3
    try:
        for _, payload in read_records(path):
            parse(payload)
    except (ShardError, SchemaError):
        pass
