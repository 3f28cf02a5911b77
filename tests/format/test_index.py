"""Index files (SHARD.idx): written by pack, rebuilt by write_index / `imgrec index`, and read
by the independent `tfrecord` package."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fixtures import run
from hypothesis import given, settings
from hypothesis import strategies as st

import imgrec
from imgrec import InputError, OutputError, PackOptions, ShardError, pack
from imgrec.format.framing import ShardWriter, read_index, read_records, write_index
from imgrec.format.layout import index_for
from imgrec.format.schema import parse
from imgrec.reading.paths import resolve


def check_index_against_framing(shard: Path) -> list[tuple[int, int]]:
    """The index beside ``shard`` tiles the file exactly and agrees with read_records."""
    entries = read_index(index_for(shard))
    data = shard.read_bytes()
    records = list(read_records(shard))
    assert [off for off, _ in entries] == [off for off, _ in records]
    assert [size for _, size in entries] == [12 + len(d) + 4 for _, d in records]
    expected_offset = 0
    for offset, size in entries:
        assert offset == expected_offset
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        assert size == 12 + length + 4
        expected_offset += size
    assert expected_offset == len(data)
    return entries


def write_with_tf(path: Path, payloads: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as w:
        for p in payloads:
            w.write(p)


def write_with_imgrec(path: Path, payloads: list[bytes]) -> None:
    with ShardWriter(path) as w:
        for p in payloads:
            w.write(p)


@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_pack_writes_an_index_that_covers_each_shard_exactly(tree, tmp_path, fmt):
    src, _ = tree
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(format=fmt, shards=3)).to_dict()
    total = 0
    for entry in manifest["shards"]:
        shard = out / entry["file"]
        assert entry["index"] == shard.name + ".idx"
        entries = check_index_against_framing(shard)
        assert len(entries) == entry["records"]
        total += len(entries)
    assert total == manifest["records"] == 13


def test_write_index_rebuilds_packs_index_byte_for_byte(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out, PackOptions(shards=2))
    for shard in resolve(out):
        idx = index_for(shard)
        written_by_pack = idx.read_bytes()
        idx.unlink()
        assert write_index(shard) == idx
        assert idx.read_bytes() == written_by_pack
        assert not list(out.glob(".*incomplete"))


def test_write_index_on_a_tensorflow_shard(tmp_path):
    payloads = [b"", b"x", b"hello world" * 50, bytes(range(256)) * 5000, b"\0" * 3]
    shard = tmp_path / "tf.tfrecord"
    write_with_tf(shard, payloads)
    idx = write_index(shard)
    assert idx == tmp_path / "tf.tfrecord.idx"
    sizes = [16 + len(p) for p in payloads]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    assert idx.read_text() == "".join(f"{o} {s}\n" for o, s in zip(offsets, sizes, strict=True))
    check_index_against_framing(shard)

    # ShardWriter, given the same payloads, writes the same shard and the same index.
    ours = tmp_path / "ours.tfrecord"
    write_with_imgrec(ours, payloads)
    assert ours.read_bytes() == shard.read_bytes()
    assert index_for(ours).read_bytes() == idx.read_bytes()

    # ... and so does the tfrecord package's own index tool.
    theirs = tmp_path / "theirs.idx"
    in_tfrecord_process(
        "from tfrecord.tools.tfrecord2idx import create_index\n"
        f"create_index({str(shard)!r}, {str(theirs)!r})\n"
    )
    assert theirs.read_bytes() == idx.read_bytes()


def test_empty_shard_has_an_empty_index(tmp_path):
    shard = tmp_path / "empty.tfrecord"
    write_with_tf(shard, [])
    assert write_index(shard).read_bytes() == b""
    ours = tmp_path / "ours.tfrecord"
    write_with_imgrec(ours, [])
    assert index_for(ours).read_bytes() == b""


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=10))
def test_write_index_equals_shardwriter_index(tmp_path_factory, payloads):
    folder = tmp_path_factory.mktemp("p")
    shard = folder / "s.tfrecord"
    write_with_imgrec(shard, payloads)
    from_writer = index_for(shard).read_bytes()
    index_for(shard).unlink()
    assert write_index(shard).read_bytes() == from_writer
    assert read_index(index_for(shard)) == [(off, 16 + len(d)) for off, d in read_records(shard)]


def damaged_copies(tmp_path: Path) -> dict[str, tuple[Path, int, int]]:
    """name -> (shard, record, offset) of the first problem."""
    payloads = [b"a" * 10, b"b" * 20, b"c" * 30]
    good = tmp_path / "good.tfrecord"
    write_with_tf(good, payloads)
    data = good.read_bytes()
    second = 16 + 10  # offset of record 1
    cases = {}

    corrupt = bytearray(data)
    corrupt[second + 12 + 5] ^= 0xFF  # a byte of record 1's data
    cases["data CRC"] = (bytes(corrupt), 1, second)
    length = bytearray(data)
    length[second] ^= 0x01  # record 1's length field
    cases["length CRC"] = (bytes(length), 1, second)
    cases["truncated"] = (data[:-3], 2, second + 16 + 20)
    result = {}
    for name, (content, record, offset) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.tfrecord"
        path.write_bytes(content)
        result[name] = (path, record, offset)
    return result


def test_damaged_shard_raises_and_keeps_the_old_index(tmp_path):
    for name, (shard, record, offset) in damaged_copies(tmp_path).items():
        idx = index_for(shard)
        idx.write_text("0 26\n")  # an earlier index, which must survive
        with pytest.raises(ShardError) as info:
            write_index(shard)
        assert info.value.path == str(shard), name
        assert info.value.record == record, name
        assert info.value.offset == offset, name
        assert idx.read_text() == "0 26\n"
        assert not list(tmp_path.glob(".*incomplete"))


def test_missing_shard_and_unwritable_index_are_imgrec_errors(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out, PackOptions(shards=2))
    first, second = resolve(out)
    second.unlink()  # listed in the manifest, but gone
    r = run("index", out)
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stderr == f"Error: {second}: cannot read the shard (No such file or directory)\n"
    index_for(first).unlink()
    index_for(first).mkdir()  # the index cannot be written where it belongs
    with pytest.raises(OutputError, match="cannot write the index"):
        write_index(first)
    assert not list(out.glob(".*incomplete"))


def test_index_file_given_as_shard_is_an_input_error(tmp_path):
    shard = tmp_path / "s.tfrecord"
    write_with_imgrec(shard, [b"abc"])
    with pytest.raises(InputError, match="index file"):
        write_index(index_for(shard))


def test_read_index_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_text("0 16\nnot an index\n")
    with pytest.raises(InputError, match="line 2"):
        read_index(bad)


def test_index_command_folder_file_and_glob(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out, PackOptions(shards=2))
    shards = resolve(out)
    before = {s: index_for(s).read_bytes() for s in shards}
    for s in shards:
        index_for(s).unlink()

    r = run("index", out, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert [d["shard"] for d in info["indexes"]] == [str(s) for s in shards]
    assert [d["index"] for d in info["indexes"]] == [str(index_for(s)) for s in shards]
    assert sum(d["records"] for d in info["indexes"]) == 13
    assert {s: index_for(s).read_bytes() for s in shards} == before

    r = run("index", shards[0])
    assert r.exit_code == 0, r.output
    records = len(before[shards[0]].splitlines())
    assert r.stdout == f"{index_for(shards[0])}: {records} records\n"

    r = run("index", "--json", out / "data-*.tfrecord")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["indexes"]) == 2


def test_index_command_on_damaged_shard_is_a_one_line_error(tmp_path):
    shard, record, offset = damaged_copies(tmp_path)["data CRC"]
    r = run("index", shard)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith(f"Error: {shard}, record {record} (byte offset {offset}): ")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert run("index", tmp_path / "nope").exit_code == 1
    assert run("index").exit_code == 2


def test_index_help_has_an_example():
    r = run("index", "-h")
    assert r.exit_code == 0 and "Example:" in r.stdout
    assert "index" in run("--help").stdout


def test_index_command_does_not_import_tensorflow(tmp_path):
    shard = tmp_path / "s.tfrecord"
    write_with_imgrec(shard, [b"abc", b"de"])
    code = (
        "import sys\n"
        "from imgrec.cli import cli\n"
        f"cli(['index', {str(shard)!r}], standalone_mode=False)\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": 2 records")


def in_tfrecord_process(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


DESCRIPTION = {
    "image/format": "byte",
    "image/shape": "int",
    "image/dtype": "byte",
    "image/class/label": "int",
    "image/class/text": "byte",
    "image/filename": "byte",
}


LOADER = """
import base64, json
from tfrecord.reader import tfrecord_loader

shard, index, description, part = json.loads(sys.argv[1])
out = []
for ex in tfrecord_loader(shard, index, description, shard=tuple(part)):
    out.append({
        "label": int(ex["image/class/label"][0]),
        "text": ex["image/class/text"].decode(),
        "filename": ex["image/filename"].decode(),
        "format": ex["image/format"].decode(),
        "dtype": ex["image/dtype"].decode(),
        "shape": [int(v) for v in ex["image/shape"]],
        "data": base64.b64encode(bytes(ex[sys.argv[2]])).decode(),
    })
print(json.dumps(out))
"""


def read_with_tfrecord_package(shard: Path, payload: str, part=(0, 1)) -> list[dict]:
    # shard=(i, n) makes the loader seek to the offsets in the index and read in file order
    # (without it, it starts at a random indexed record and wraps around).
    args = [str(shard), str(index_for(shard)), {**DESCRIPTION, payload: "byte"}, part]
    records = json.loads(in_tfrecord_process(LOADER, json.dumps(args), payload))
    for r in records:
        r["shape"] = tuple(r["shape"])
        r["data"] = base64.b64decode(r["data"])
    return records


def read_with_imgrec(shard: Path) -> list[dict]:
    out = []
    for _, data in read_records(shard):
        r = parse(data)
        out.append(
            {
                "label": r.label,
                "text": r.text,
                "filename": r.filename,
                "format": r.format,
                "dtype": r.dtype,
                "shape": (r.height, r.width, r.channels),
                "data": r.data,
            }
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_tfrecord_package_reads_imgrec_shards(packed_tree, fmt):
    out, _ = packed_tree(format=fmt, shards=2)
    payload = "image/raw" if fmt == "raw" else "image/encoded"
    theirs: list[dict] = []
    for shard in resolve(out):
        records = read_with_tfrecord_package(shard, payload)
        assert records == read_with_imgrec(shard)
        # Reading the shard in three parts through the index gives each record once, in order.
        parts = [read_with_tfrecord_package(shard, payload, (i, 3)) for i in range(3)]
        assert [r for p in parts for r in p] == records
        theirs += records
    assert len(theirs) == 13

    # The same labels and filenames as imgrec.dataset, and for raw records the same pixels.
    ours = {
        fn.numpy().decode(): (im.numpy(), int(lab))
        for im, lab, fn in imgrec.dataset(out, with_filenames=True)
    }
    assert sorted(ours) == sorted(r["filename"] for r in theirs)
    for r in theirs:
        image, label = ours[r["filename"]]
        assert label == r["label"]
        assert image.shape == r["shape"]
        if fmt == "raw":
            pixels = np.frombuffer(r["data"], r["dtype"]).reshape(r["shape"])
            want = tf.image.convert_image_dtype(pixels, tf.float32).numpy()
            assert np.array_equal(image, want), r["filename"]
