"""What pack keeps, TensorFlow decodes: seeded damaged JPEGs and PNGs (tests/fuzzing.py)
loaded as pack loads them, every stored one decoded by TensorFlow as imgrec.dataset does;
and each of images/decoders.py's rules, shown needed: Pillow reads the file, TensorFlow
does not."""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from fuzzing import (
    _chunk,
    _png_chunks,
    originals,
    pillow_decodes,
    tensorflow_decodes,
    variants,
    without_end,
)
from PIL import Image

from imgrec.images.decoders import jpeg_refusal, png_refusal
from imgrec.images.loading import ImageOptions, NotAnImage, SkipImage, load_bytes


def fuzz(seed: int, n: int, per: int) -> Counter[str]:
    """Both directions over the variants: no stored file that TensorFlow fails to decode,
    no skipped file that both Pillow and TensorFlow decode. The counts of each outcome."""
    counts: Counter[str] = Counter()
    wrong = []
    for kind, op, data in variants(seed, n, per):
        counts["variants"] += 1
        try:
            loaded = load_bytes(data, ImageOptions())
        except (SkipImage, NotAnImage) as e:
            counts["skipped"] += 1
            if pillow_decodes(data) and tensorflow_decodes(tf, data, kind, None):
                wrong.append(f"skipped, though both decode it: {kind} {op}: {e}")
            continue
        counts["kept" if loaded.data == data else "transcoded"] += 1
        shape = (loaded.height, loaded.width, loaded.channels)
        if not tensorflow_decodes(tf, loaded.data, loaded.format, shape):
            wrong.append(f"stored, but TensorFlow cannot decode it: {kind} {op}")
    assert not wrong, wrong[:10]
    return counts


def test_what_pack_stores_tensorflow_decodes_and_what_both_decode_is_kept():
    counts = fuzz(seed=0, n=24, per=8)
    # the rules are exercised: some damaged files kept, some repaired, some skipped
    assert counts["kept"] and counts["transcoded"] and counts["skipped"], counts


@pytest.mark.slow
def test_many_seeds_of_damaged_files_all_decode_where_kept():
    for seed in range(1, 4):
        counts = fuzz(seed=seed, n=150, per=16)
        assert counts["variants"] == 150 * 17


def a_png(mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(3)
    im = Image.fromarray(rng.integers(0, 255, (20, 30, 3), np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def chunk_at(data: bytes, kind: bytes) -> tuple[int, int]:
    return next((s, e) for s, e, k in _png_chunks(data) if k == kind)


def flip_last(data: bytes, end: int) -> bytes:
    b = bytearray(data)
    b[end - 1] ^= 1
    return bytes(b)


def damaged_pngs() -> dict[str, tuple[bytes, str]]:
    png, pal = a_png(), a_png("P")
    idat, iend, ihdr = chunk_at(png, b"IDAT"), chunk_at(png, b"IEND"), chunk_at(png, b"IHDR")
    plte, pal_idat = chunk_at(pal, b"PLTE"), chunk_at(pal, b"IDAT")
    stream = png[idat[0] + 8 : idat[1] - 4]
    split = _chunk(b"IDAT", stream[:-4]) + _chunk(b"tEXt", b"a\0b") + _chunk(b"IDAT", stream[-4:])
    return {
        "no IEND": (png[: iend[0]], "it ends before its IEND chunk"),
        "IDAT CRC": (flip_last(png, idat[1]), "the CRC of its IDAT chunk is wrong"),
        "IEND CRC": (flip_last(png, iend[1]), "the CRC of its IEND chunk is wrong"),
        "second IHDR": (png[: ihdr[1]] + png[ihdr[0] : ihdr[1]] + png[ihdr[1] :],
                        "it has a second IHDR chunk"),
        "unknown critical": (png[: idat[0]] + _chunk(b"ABCD", b"12") + png[idat[0] :],
                             "it holds an unknown critical chunk 'ABCD'"),
        "no PLTE": (pal[: plte[0]] + pal[plte[1] :], "a palette image without a PLTE chunk"),
        "two PLTE": (pal[: plte[1]] + pal[plte[0] : plte[1]] + pal[plte[1] :],
                     "it has a PLTE chunk after another"),
        "PLTE after IDAT": (pal[: plte[0]] + pal[plte[1] : pal_idat[1]] + pal[plte[0] : plte[1]]
                            + pal[pal_idat[1] :], "a palette image without a PLTE chunk"),
        "IDAT split": (png[: idat[0]] + split + png[idat[1] :], "split by another chunk"),
    }  # fmt: skip


@pytest.mark.parametrize("case", sorted(damaged_pngs()))
def test_each_png_rule_is_one_pillow_reads_and_tensorflow_refuses(case):
    data, reason = damaged_pngs()[case]
    assert pillow_decodes(data)
    assert not tensorflow_decodes(tf, data, "png", None)
    assert reason in (png_refusal(data) or "")


@pytest.mark.parametrize("case", sorted(damaged_pngs()))
def test_a_png_tensorflow_would_refuse_is_repaired_from_its_pixels(case):
    data, reason = damaged_pngs()[case]
    loaded = load_bytes(data, ImageOptions())
    assert loaded.data != data and loaded.format == "png"
    assert loaded.note is not None and "TensorFlow would refuse its bytes" in loaded.note
    assert reason in loaded.note
    decoded = tf.io.decode_png(loaded.data, channels=loaded.channels).numpy()
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(decoded, np.asarray(im.convert("RGB")))


def test_a_short_image_data_stream_under_valid_crcs_is_refused():
    png = a_png()
    idat = chunk_at(png, b"IDAT")
    raw = zlib.decompress(png[idat[0] + 8 : idat[1] - 4])
    short = png[: idat[0]] + _chunk(b"IDAT", zlib.compress(raw[:-31])) + png[idat[1] :]
    assert not tensorflow_decodes(tf, short, "png", None)
    assert "ends before the last row" in (png_refusal(short) or "")
    assert png_refusal(short, inflate=False) is None  # the chunks alone are sound


def test_sound_pngs_of_every_mode_and_interlaced_ones_pass_every_rule():
    for kind, data in originals(seed=5, n=42):
        if kind == "png":
            assert png_refusal(data) is None, struct.unpack_from(">IIBB", data, 16)
            assert load_bytes(data, ImageOptions()).data == data
        else:
            assert jpeg_refusal(data) is None


def test_a_jpeg_without_eoi_is_decoded_in_full_not_at_one_eighth():
    # At 1/8 scale, Pillow's check decode can finish without the file's last bytes.
    for kind, data in originals(seed=0, n=30):
        if kind != "jpeg":
            continue
        cut = without_end(kind, data)
        assert jpeg_refusal(cut) is not None
        if tensorflow_decodes(tf, cut, "jpeg", None):
            continue
        with pytest.raises(SkipImage, match="truncated|corrupt"):
            load_bytes(cut, ImageOptions())
