"""TFRecord framing and the Example schema, checked against TensorFlow itself."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec import ShardError
from imgrec.format.framing import ShardWriter, frame, read_records
from imgrec.format.schema import Record, SchemaError, parse, serialize

records = st.builds(
    Record,
    data=st.binary(max_size=300),
    format=st.sampled_from(["jpeg", "png"]),
    height=st.integers(0, 2**31),
    width=st.integers(0, 2**31),
    channels=st.sampled_from([1, 3, 4]),
    dtype=st.sampled_from(["uint8", "uint16"]),
    label=st.integers(-1, 2**40),
    text=st.text(max_size=20),
    filename=st.text(max_size=40),
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    orientation=st.integers(1, 8),
)


@settings(max_examples=60, deadline=None)
@given(records)
def test_example_round_trip_and_matches_tensorflow(rec):
    data = serialize(rec)
    assert parse(data, strict=False) == rec
    ex = tf.train.Example.FromString(data)
    # Same bytes as TensorFlow's own deterministic serialisation of the same message.
    assert ex.SerializeToString(deterministic=True) == data
    feats = ex.features.feature
    assert feats["image/class/label"].int64_list.value[0] == rec.label
    assert feats["image/filename"].bytes_list.value[0] == rec.filename.encode()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_framing_is_byte_identical_to_tf_writer(tmp_path_factory, payloads):
    path = tmp_path_factory.mktemp("f") / "x.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for p in payloads:
            w.write(p)
    assert path.read_bytes() == b"".join(frame(p) for p in payloads)
    assert [d for _, d in read_records(path)] == payloads


def test_tensorflow_reads_imgrec_shards(tmp_path):
    path = tmp_path / "s.tfrecord"
    recs = [
        Record(bytes([i]) * 12, "raw", 2, 2, 3, "uint8", i, f"c{i}", f"f{i}.png", "0" * 64)
        for i in range(3)
    ]
    with ShardWriter(path) as w:
        for r in recs:
            w.write(serialize(r))
    spec = {
        "image/raw": tf.io.FixedLenFeature([], tf.string),
        "image/shape": tf.io.FixedLenFeature([3], tf.int64),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }
    got = [tf.io.parse_single_example(x, spec) for x in tf.data.TFRecordDataset(str(path))]
    assert [int(g["image/class/label"]) for g in got] == [0, 1, 2]
    assert got[2]["image/raw"].numpy() == bytes([2]) * 12
    assert got[0]["image/shape"].numpy().tolist() == [2, 2, 3]


def test_crc_errors_name_file_record_and_offset(tmp_path):
    path = tmp_path / "s.tfrecord"
    blob = frame(b"first") + frame(b"second")
    bad = bytearray(blob)
    bad[len(frame(b"first")) + 14] ^= 0xFF  # a data byte of record 1
    path.write_bytes(bytes(bad))
    with pytest.raises(ShardError) as e:
        list(read_records(path))
    assert str(path) in str(e.value) and "record 1" in str(e.value)
    assert f"byte offset {len(frame(b'first'))}" in str(e.value)
    path.write_bytes(blob[:-3])
    with pytest.raises(ShardError, match="truncated"):
        list(read_records(path))
    path.write_bytes(struct.pack("<Q", 2**60) + blob[8:])
    with pytest.raises(ShardError, match="CRC"):
        list(read_records(path))


def test_raw_length_must_match_shape():
    rec = Record(b"\0" * 11, "raw", 2, 2, 3, "uint8", 0, "", "x", "")
    with pytest.raises(SchemaError, match="needs 12"):
        parse(serialize(rec))
    ok = Record(np.zeros((2, 2, 3), np.uint16).tobytes(), "raw", 2, 2, 3, "uint16", 0, "", "x", "")
    assert parse(serialize(ok)) == ok


def test_reads_inception_style_records():
    """Shards written by TF's build_image_data.py use image/encoded, uppercase format."""
    ex = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpg"])),
                "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
                "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[5])),
                "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
                "image/channels": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[4])),
                "image/class/text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"dog"])),
            }
        )
    )
    rec = parse(ex.SerializeToString())
    assert (rec.format, rec.height, rec.width, rec.channels, rec.label, rec.text) == (
        "jpeg",
        5,
        7,
        3,
        4,
        "dog",
    )
