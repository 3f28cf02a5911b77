"""Datasets written the way other tools write them, for imgrec convert's tests: MXNet
RecordIO (dmlc's RecordIOWriter framing, im2rec's IRHeader, .idx and .lst), Caffe LMDB
(convert_imageset's keys and Datum records, raw ones channel-planar BGR), and TensorFlow's
inception build_image_data.py TFRecords."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from fixtures import smooth_rgb
from PIL import Image

from imgrec.format.framing import frame
from imgrec.format.schema import Example
from imgrec.packing.converters.caffe import Datum

MAGIC = 0xCED7230A


def images(n: int = 6) -> list[tuple[bytes, int, str]]:
    """(encoded bytes, class number, path) of n small photos-like images, PNG and JPEG."""
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(smooth_rgb(20, 24, i)).save(buf, "JPEG" if i % 2 else "PNG", quality=90)
        out.append((buf.getvalue(), i % 3, f"c{i % 3}/img{i}.{'jpg' if i % 2 else 'png'}"))
    return out


def with_magic() -> bytes:
    """A valid PNG whose bytes hold RecordIO's magic at a 4-byte boundary of the record
    (24 bytes of IRHeader, then this): data after IEND, which decoders ignore."""
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(20, 24, 9)).save(buf, "PNG")
    png = buf.getvalue()
    return png + b"\0" * (-len(png) % 4) + struct.pack("<I", MAGIC) + b"tail"


def write_record(f: io.BufferedWriter, payload: bytes) -> None:
    """One record as dmlc's RecordIOWriter::WriteRecord writes it: split into parts where
    the magic occurs at a 4-byte boundary (flags 1, 2, 3), each part framed by the magic
    and (flag << 29 | length), the end padded with zeros to 4 bytes."""
    magic, start, n = struct.pack("<I", MAGIC), 0, len(payload)
    for i in range(0, n // 4 * 4, 4):
        if payload[i : i + 4] == magic:
            f.write(magic + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start)))
            f.write(payload[start:i])
            start = i + 4
    f.write(magic + struct.pack("<I", ((3 if start else 0) << 29) | (n - start)))
    f.write(payload[start:] + b"\0" * (-(n - start) % 4))


def write_rec(path: Path, records: list[tuple[bytes, list[float], str]], idx: bool = True) -> None:
    """A .rec (and .idx, "key<TAB>offset") and .lst ("index<TAB>labels<TAB>path") as
    im2rec makes them: IRHeader(flag, label, id, id2), flag labels first when there are
    several."""
    with open(path, "wb") as f, open(path.with_suffix(".lst"), "w") as lst:
        offsets = []
        for n, (payload, labels, name) in enumerate(records):
            offsets.append(f.tell())
            if len(labels) == 1:
                head = struct.pack("<IfQQ", 0, labels[0], n, 0)
            else:
                head = struct.pack("<IfQQ", len(labels), 0.0, n, 0)
                head += struct.pack(f"<{len(labels)}f", *labels)
            write_record(f, head + payload)
            lst.write(f"{n}\t" + "\t".join(str(x) for x in labels) + f"\t{name}\n")
    if idx:
        path.with_suffix(".idx").write_text("".join(f"{n}\t{o}\n" for n, o in enumerate(offsets)))


def write_lmdb(folder: Path, records: list[tuple[bytes, int, str]], raw: bool) -> None:
    """convert_imageset's LMDB: keys "%08d_<path>", Datum values; raw datums hold uint8
    pixels channel-planar in BGR order, encoded ones the file's bytes."""
    import lmdb

    env = lmdb.open(str(folder), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for n, (payload, label, name) in enumerate(records):
            datum = Datum(label=label)
            if raw:
                rgb = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
                datum.channels, datum.height, datum.width = 3, rgb.shape[0], rgb.shape[1]
                datum.data = np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)).tobytes()
            else:
                datum.encoded, datum.data = True, payload
            txn.put(f"{n:08d}_{name}".encode(), datum.SerializeToString())
    env.close()


def write_inception(path: Path, records: list[tuple[bytes, int, str]]) -> None:
    """build_image_data.py's Examples: labels from 1 (0 is background), class text."""
    with open(path, "wb") as f:
        for payload, label, name in records:
            ex = Example()
            feat = ex.features.feature
            feat["image/encoded"].bytes_list.value.append(payload)
            feat["image/format"].bytes_list.value.append(b"JPEG")
            feat["image/class/label"].int64_list.value.append(label + 1)
            feat["image/class/text"].bytes_list.value.append(f"c{label}".encode())
            feat["image/filename"].bytes_list.value.append(name.rsplit("/", 1)[-1].encode())
            f.write(frame(ex.SerializeToString()))
