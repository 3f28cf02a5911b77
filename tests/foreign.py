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


def od_api_examples(src: Path, drawn: list, first_id: int = 1) -> list:
    """TF Object Detection API Examples (create_coco_tf_record.py's keys) of ``annotated.draw``'s
    images: each file's bytes, and boxes found from its pixels as TensorFlow decodes them (the
    EXIF orientation not applied), as fractions of that width and height. Class ids are
    ``first_id`` + the colour's index; class 1 objects are crowds, class 2 ones difficult."""
    from annotated import NAMES

    from imgrec.images.pixels import orient

    examples = []
    for n, d in enumerate(drawn):
        payload = (src / d.rel).read_bytes()
        back = {6: 8, 8: 6}.get(d.orientation, d.orientation)  # the others undo themselves
        found = []
        for x0, y0, x1, y1, c in d.boxes:
            shown = np.zeros((d.height, d.width, 1), np.uint8)
            shown[y0:y1, x0:x1] = 1
            stored = orient(shown, back)
            assert (orient(stored, d.orientation) == shown).all()
            ys, xs = np.nonzero(stored[..., 0])
            found.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, c))
        h, w = (d.width, d.height) if d.orientation >= 5 else (d.height, d.width)
        ex = Example()
        feat = ex.features.feature
        feat["image/encoded"].bytes_list.value.append(payload)
        feat["image/format"].bytes_list.value.append(b"jpeg" if d.rel.endswith(".jpg") else b"png")
        feat["image/height"].int64_list.value.append(h)
        feat["image/width"].int64_list.value.append(w)
        feat["image/filename"].bytes_list.value.append(d.rel.encode())
        feat["image/source_id"].bytes_list.value.append(str(100 + n).encode())
        for key, values in (
            ("image/object/bbox/xmin", [x0 / w for x0, _, _, _, _ in found]),
            ("image/object/bbox/xmax", [x1 / w for _, _, x1, _, _ in found]),
            ("image/object/bbox/ymin", [y0 / h for _, y0, _, _, _ in found]),
            ("image/object/bbox/ymax", [y1 / h for _, _, _, y1, _ in found]),
            ("image/object/area", [float((x1 - x0) * (y1 - y0)) for x0, y0, x1, y1, _ in found]),
        ):
            feat[key].float_list.value.extend(values)
        for key, values in (
            ("image/object/class/label", [first_id + c for *_, c in found]),
            ("image/object/is_crowd", [int(c == 1) for *_, c in found]),
            ("image/object/difficult", [int(c == 2) for *_, c in found]),
            ("image/object/truncated", [0 for _ in found]),
        ):
            feat[key].int64_list.value.extend(values)
        texts = [NAMES[c].encode() for *_, c in found]
        feat["image/object/class/text"].bytes_list.value.extend(texts)
        examples.append(ex)
    return examples


def write_examples(path: Path, examples: list) -> Path:
    with open(path, "wb") as f:
        for ex in examples:
            f.write(frame(ex.SerializeToString()))
    return path
