"""Small sources and records the tests make: photo folders, JPEGs, records, shards, and
containers (ICNS) around an image."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import numpy as np
from fixtures import encode, smooth_rgb
from PIL import Image

from imgrec.format.framing import ShardWriter, frame, read_records
from imgrec.format.schema import Record, parse, serialize


def one_image(folder: Path, name: str = "a.png", size: tuple[int, int] = (12, 10)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(smooth_rgb(size[1], size[0], 1)).save(path, "PNG")
    return path


def photo_source(root: Path, n: int, side: int = 128) -> Path:
    """``n`` photo-like PNGs of side x side in two class folders (24 distinct images,
    repeated: packing with --format png decodes and encodes every one all the same)."""
    distinct = [encode(Image.fromarray(smooth_rgb(side, side, s)), "PNG") for s in range(24)]
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(distinct[i % len(distinct)])
    return root


def jpeg(seed: int, h: int = 96, w: int = 128) -> bytes:
    return encode(Image.fromarray(smooth_rgb(h, w, seed)), "JPEG", quality=90)


def jpeg_record(name: str, data: bytes, h: int = 96, w: int = 128) -> Record:
    return Record(data, "jpeg", h, w, 3, "uint8", 0, "a", name, hashlib.sha256(data).hexdigest())


def icns(png: bytes, kind: bytes = b"ic07") -> bytes:
    """An .icns whose one entry (``ic07`` declares 128x128) holds this PNG."""
    entry = kind + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


def gif_with_a_frame_of(w: int, h: int) -> bytes:
    """A 10x10 GIF whose one frame declares w x h pixels (Pillow's own bomb guard fires)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + bytes(3) + b"\xff" * 3
    return screen + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x02\x4c\x01\x00\x3b"


def ico_of(png: bytes) -> bytes:
    """An .ico whose one entry (declaring 256x256) holds this PNG."""
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def empty_dataset(root: Path) -> Path:
    """``root/out``: a dataset of 0 records, as pack writes one when every file is skipped
    (one class folder whose only file is a JPEG with garbage after its header)."""
    from imgrec import pack

    whole = jpeg(5)
    scan = whole.index(b"\xff\xda")  # the header up to the scan, then noise
    bad = whole[: scan + 14] + bytes(range(7, 57))
    (root / "src" / "cat").mkdir(parents=True)
    (root / "src" / "cat" / "bad.jpg").write_bytes(bad)
    manifest = pack(root / "src", root / "out")
    assert manifest.records == 0 and len(manifest.skipped) == 1
    return root / "out"


def shard_with_a_cut_jpeg(path: Path) -> Path:
    """good0.jpg, cut.jpg (a JPEG cut to a third: its header whole and true to the record's
    shape, its CRCs valid), good1.jpg, good2.jpg."""
    whole = jpeg(2)
    cut = whole[: len(whole) // 3]
    with Image.open(io.BytesIO(cut)) as im:
        assert im.size == (128, 96)  # the header is sound: only decoding finds the damage
    with ShardWriter(path) as writer:
        for name, data in [
            ("good0.jpg", jpeg(1)),
            ("cut.jpg", cut),
            ("good1.jpg", jpeg(3)),
            ("good2.jpg", jpeg(4)),
        ]:
            writer.write(serialize(jpeg_record(name, data)))
    return path


def png(seed: int, h: int = 24, w: int = 32) -> bytes:
    return encode(Image.fromarray(smooth_rgb(h, w, seed)), "PNG")


def shard_with_a_png_without_iend(path: Path) -> Path:
    """good0.png, no-iend.png (its IEND chunk missing: Pillow reads it, TensorFlow does
    not; kept as it was by imgrec before its TensorFlow rules), good1.png."""
    cut = png(2)[:-12]
    with ShardWriter(path) as writer:
        for name, data in [("good0.png", png(1)), ("no-iend.png", cut), ("good1.png", png(3))]:
            rec = Record(data, "png", 24, 32, 3, "uint8", 0, "a", name,
                         hashlib.sha256(data).hexdigest())  # fmt: skip
            writer.write(serialize(rec))
    return path


def make_src(root: Path, n: int = 12, size: int = 16) -> Path:
    for i in range(n):
        folder = root / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_rgb(size, size + i % 5, i)).save(folder / f"{i:04d}.png")
    return root


def record(**changes) -> bytes:
    base = dict(
        data=np.zeros((2, 3, 1), np.uint8).tobytes(), format="raw", height=2, width=3,
        channels=1, dtype="uint8", label=0, text="a", filename="a/x.png", sha256="0" * 64,
    )  # fmt: skip
    return serialize(Record(**{**base, **changes}))


def shard_of(path: Path, *records: bytes) -> Path:
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


def records_by_name(out: Path) -> dict[str, Record]:
    """Every record of a packed dataset, by its filename."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        (r := parse(data)).filename: r
        for shard in manifest["shards"]
        for _offset, data in read_records(out / shard["file"])
    }
