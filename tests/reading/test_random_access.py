"""imgrec.RecordSource: random access through the index files, without TensorFlow, giving the
pixels, labels and annotations imgrec.dataset gives; safe in threads, forked and spawned
workers; every damage a one-line error naming the shard and record."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from annotated import draw, same_example, with_shapes_and_centres, write_coco, write_masks
from buckets import BUCKET
from corpus import make_corpus
from fixtures import smooth_rgb
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.format.framing import FOOTER_SIZE, HEADER_SIZE, read_records
from imgrec.format.schema import parse


def _by_name(ds) -> dict[str, tuple[np.ndarray, int]]:
    """imgrec.dataset's (image, label) by filename, unbatched."""
    return {
        name.decode("utf-8", "surrogateescape"): (image, int(label))
        for image, label, name in ds.as_numpy_iterator()
    }


@pytest.fixture(scope="module")
def shards(tmp_path_factory, shared_tree) -> dict[str, Path]:
    """The test tree packed into 3 shards, encoded and raw, and with two splits."""
    src, _ = shared_tree
    root = tmp_path_factory.mktemp("random-access")
    out = {}
    for fmt in ("encoded", "raw"):
        out[fmt] = root / fmt
        pack(src, out[fmt], PackOptions(format=fmt, shards=3))
    out["split"] = root / "split"
    pack(src, out["split"], PackOptions(split=(("train", 0.7), ("val", 0.3)), shards=2))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_len_and_indexing_over_shards_in_the_manifests_order(shards, fmt):
    """Record i is the i-th of the shards taken in the manifest's order, each from its
    first record: what imgrec.dataset reads (in its own interleaved order)."""
    source = imgrec.RecordSource(shards[fmt])
    want = _by_name(imgrec.dataset(shards[fmt], with_filenames=True))
    manifest = imgrec.read_manifest(shards[fmt])
    assert len(source) == len(want) == manifest.records == 13 and len(manifest.shards) == 3
    in_order = [
        parse(data).filename
        for shard in manifest.shards
        for _, data in read_records(shards[fmt] / shard.file)
    ]
    assert [source[i]["filename"] for i in range(len(source))] == in_order
    for i in range(len(source)):
        example = source[i]
        image, label = want[example["filename"]]
        assert example["label"] == label and example["image"].dtype == np.float32
        assert np.array_equal(example["image"], image), example["filename"]
    assert source[-1]["filename"] == in_order[-1]
    for wrong in (len(source), -len(source) - 1):
        with pytest.raises(IndexError):
            source[wrong]
    with pytest.raises(TypeError):
        source[1.0]  # type: ignore[index]


@pytest.mark.slow
def test_splits_have_their_own_length_and_records(shards):
    whole = imgrec.RecordSource(shards["split"])
    parts = {s: imgrec.RecordSource(shards["split"], split=s) for s in ("train", "val")}
    assert len(parts["train"]) + len(parts["val"]) == len(whole) == 13
    for name, part in parts.items():
        wanted = _by_name(imgrec.dataset(shards["split"], split=name, with_filenames=True))
        assert sorted(part[i]["filename"] for i in range(len(part))) == sorted(wanted)
    with pytest.raises(imgrec.InputError, match="no split 'test'"):
        imgrec.RecordSource(shards["split"], split="test")


def test_stored_dtype_and_channels(shards):
    """Each image as stored: 16-bit gray, gray, alpha, 8-bit colour."""
    stored = imgrec.RecordSource(shards["encoded"], dtype=None)
    got = {stored[i]["filename"]: stored[i]["image"] for i in range(len(stored))}
    assert got["cat/deep.png"].dtype == np.uint16 and got["cat/deep.png"].shape == (20, 18, 1)
    assert got["cat/cat2.png"].shape[-1] == 1 and got["dog/alpha.png"].shape[-1] == 4
    assert got["cat/cat1.jpg"].dtype == np.uint8 and got["cat/cat1.jpg"].shape == (25, 32, 3)


@pytest.mark.parametrize("fmt", ["encoded", "raw"])
@pytest.mark.parametrize("dtype", [None, "float32"])
def test_images_are_arrays_of_their_own(shards, fmt, dtype):
    """Writable (PyTorch warns of a read-only array, and writing to one raises): neither
    views of the record's bytes nor Pillow's read-only arrays."""
    source = imgrec.RecordSource(shards[fmt], dtype=dtype)
    for i in range(len(source)):
        image = source[i]["image"]
        assert image.flags.writeable, source[i]["filename"]
        image[...] = 0


@pytest.mark.slow
def test_channels_as_imgrec_dataset_converts_them(shards):
    for channels in (1, 3, 4):
        source = imgrec.RecordSource(shards["encoded"], channels=channels)
        want = _by_name(imgrec.dataset(shards["encoded"], channels=channels, with_filenames=True))
        for i in range(len(source)):
            example = source[i]
            image, _ = want[example["filename"]]
            assert example["image"].shape == image.shape, (channels, example["filename"])
            assert np.array_equal(example["image"], image), (channels, example["filename"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_the_corpus_reads_as_imgrec_dataset_reads_it(tmp_path, fmt):
    """Every odd image of the corpus (8, 16 and 32 bit, gray, alpha, palettes, EXIF
    orientations, CMYK, TIFF, WebP, ...), as stored, converted to 1, 3 and 4 channels, and
    resized: the same float32 pixels, exactly."""
    src, out = tmp_path / "src", tmp_path / "out"
    make_corpus(src, copies=1)
    pack(src, out, PackOptions(format=fmt))
    for channels, resize in [(None, None), (1, None), (3, None), (4, None), (None, (9, 7))]:
        read = imgrec.dataset(out, channels=channels, resize=resize, with_filenames=True)
        want = _by_name(read)
        source = imgrec.RecordSource(out, channels=channels, resize=resize)
        assert len(source) == len(want) > 50
        for i in range(len(source)):
            example = source[i]
            image, label = want[example["filename"]]
            assert example["label"] == label, example["filename"]
            assert example["image"].dtype == image.dtype == np.float32
            assert example["image"].flags.writeable
            where = (channels, resize, example["filename"])
            assert example["image"].shape == image.shape, where
            assert np.array_equal(example["image"], image), where


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_resize_is_imgrec_datasets_with_its_jpeg_dct_scale(tmp_path, fmt):
    """Photos of one dtype (resized in uint8, rounded back, as imgrec.dataset does), JPEGs
    decoded at 1/2, 1/4 and 1/8 of their size where that still covers the target, EXIF
    orientations: exactly imgrec.dataset's pixels; upscaling too."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    for i, orientation in enumerate([1, 6, 3, 8]):
        exif = Image.Exif()
        exif[0x0112] = orientation
        image = Image.fromarray(smooth_rgb(96 + 8 * i, 128, i))
        image.save(src / "a" / f"p{i}.jpg", quality=90, exif=exif)
        image.save(src / "a" / f"q{i}.png")
    out = tmp_path / "out"
    pack(src, out, PackOptions(format=fmt))
    for size in [(48, 60), (24, 30), (9, 11), (200, 150)]:
        want = _by_name(imgrec.dataset(out, resize=size, with_filenames=True))
        source = imgrec.RecordSource(out, resize=size)
        assert len(source) == len(want) == 8
        for i in range(len(source)):
            example = source[i]
            image, _ = want[example["filename"]]
            assert example["image"].shape == size + (3,) == image.shape
            assert np.array_equal(example["image"], image), (size, example["filename"])
    stored = imgrec.RecordSource(out, resize=(9, 11), dtype=None)[0]["image"]
    assert stored.dtype == np.uint8 and stored.shape == (9, 11, 3)
    for wrong in [(0, 4), (3,), (2.5, 4), "64x64"]:
        with pytest.raises(imgrec.ImgrecError, match="resize="):
            imgrec.RecordSource(out, resize=wrong)  # type: ignore[arg-type]


def test_annotations_read_as_imgrec_dataset_gives_them(tmp_path):
    """Boxes, objects, instance masks, keypoints and per-image fields of every type."""
    src = tmp_path / "src"
    drawn = draw(src, count=6)
    coco = write_coco(drawn, tmp_path / "instances.json")
    with_shapes_and_centres(coco)
    rows = [
        {"file_name": d.rel, "caption": f"image {n}", "score": n / 4, "n": n, "v": [n, 0.5]}
        for n, d in enumerate(drawn)
    ]
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    pack(src, out, PackOptions(annotations=str(coco)))
    for size in (None, (17, 23)):  # and read-time resize: masks by nearest neighbour
        source = imgrec.RecordSource(out, resize=size)
        read = list(imgrec.dataset(out, resize=size, with_filenames=True).as_numpy_iterator())
        assert len(source) == len(read) == len(drawn)
        want = {w["filename"].decode(): w for w in read}
        objects = 0
        for i in range(len(source)):
            got = source[i]
            same_example(got, want[got["filename"]])
            assert got["object_masks"].shape[0] == len(got["bounding_boxes"]["labels"])
            objects += len(got["bounding_boxes"]["labels"])
        assert objects == sum(len(d.boxes) for d in drawn) > 0
    assert "keypoints" in got and set(got["fields"]) == {"caption", "score", "n", "v"}


@pytest.mark.slow
def test_semantic_masks_read_as_imgrec_dataset_gives_them(tmp_path):
    src = tmp_path / "src"
    drawn = draw(src, count=4)
    masks = write_masks(drawn, tmp_path / "masks")
    out = tmp_path / "out"
    pack(src, out, PackOptions(masks=str(masks), resize=(20, 30)))
    for size in (None, (13, 47)):  # and read-time resize: masks by nearest neighbour
        source = imgrec.RecordSource(out, resize=size)
        read = imgrec.dataset(out, resize=size, with_filenames=True).as_numpy_iterator()
        want = {w["filename"].decode(): w for w in read}
        assert len(source) == len(want) == len(drawn) == 6  # 2 of them negatives
        for i in range(len(source)):
            got = source[i]
            same_example(got, want[got["filename"]])
            h, w = size or (20, 30)
            assert got["segmentation_mask"].shape == (h, w, 1) and got["image"].shape == (h, w, 3)


@pytest.mark.slow
def test_shards_in_a_bucket_read_by_ranged_reads(shards, moto_server):
    """A dataset copied to an S3 endpoint on 127.0.0.1 reads as the local one; a damaged
    object is named by its URL."""
    local = imgrec.RecordSource(shards["encoded"])
    for path in shards["encoded"].iterdir():
        moto_server.put_object(Bucket=BUCKET, Key=f"ds/{path.name}", Body=path.read_bytes())
    remote = imgrec.RecordSource(f"s3://{BUCKET}/ds")
    assert len(remote) == len(local) == 13
    for i in (0, 7, 12, 3):
        same_example(remote[i], local[i])
    first = sorted(p.name for p in shards["encoded"].glob("*.tfrecord"))[0]
    data = bytearray((shards["encoded"] / first).read_bytes())
    _, _, offset = local.locate(0)
    data[offset + 30] ^= 0xFF
    moto_server.put_object(Bucket=BUCKET, Key=f"ds/{first}", Body=bytes(data))
    with pytest.raises(imgrec.ShardError, match=rf"s3://{BUCKET}/ds/{first}, record 0"):
        imgrec.RecordSource(f"s3://{BUCKET}/ds")[0]


@pytest.mark.slow
def test_shards_in_gcs_read_by_one_ranged_get_per_record(shards, gcs_server, monkeypatch):
    """The same against a GCS endpoint on 127.0.0.1: the examples are the local ones, each
    record one GET of exactly its bytes (counted in the client), and a damaged object is
    named by its URL."""
    from google.cloud.storage import Blob

    local = imgrec.RecordSource(shards["encoded"])
    for path in shards["encoded"].iterdir():
        gcs_server.blob(f"ds/{path.name}").upload_from_filename(str(path))
    remote = imgrec.RecordSource(f"gs://{BUCKET}/ds")
    assert len(remote) == len(local) == 13
    gets = []
    download = Blob.download_as_bytes

    def counted(blob, *args, **kwargs):
        gets.append((blob.name, kwargs.get("start"), kwargs.get("end")))
        return download(blob, *args, **kwargs)

    monkeypatch.setattr(Blob, "download_as_bytes", counted)
    for i in (0, 7, 12, 3):
        same_example(remote[i], local[i])
    framed = [HEADER_SIZE + len(local.read(i)) + FOOTER_SIZE for i in (0, 7, 12, 3)]
    assert [end - start + 1 for _, start, end in gets] == framed  # one GET each, its bytes
    first = sorted(p.name for p in shards["encoded"].glob("*.tfrecord"))[0]
    data = bytearray((shards["encoded"] / first).read_bytes())
    _, _, offset = local.locate(0)
    data[offset + 30] ^= 0xFF
    gcs_server.blob(f"ds/{first}").upload_from_string(bytes(data))
    with pytest.raises(imgrec.ShardError, match=rf"gs://{BUCKET}/ds/{first}, record 0"):
        imgrec.RecordSource(f"gs://{BUCKET}/ds")[0]


def test_no_tensorflow_on_this_path(shards):
    code = textwrap.dedent(
        f"""
        import sys
        import imgrec
        source = imgrec.RecordSource({str(shards["encoded"])!r})
        assert len(source) == 13 and source[3]["image"].ndim == 3
        assert "tensorflow" not in sys.modules, "tensorflow was imported"
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_shards_without_an_index_say_what_to_run(shards, tmp_path):
    shard = tmp_path / "other.tfrecord"
    shutil.copy(next(shards["encoded"].glob("*.tfrecord")), shard)
    with pytest.raises(imgrec.InputError, match=r"run imgrec index .*other\.tfrecord"):
        imgrec.RecordSource(shard)
    imgrec.write_index(shard)
    assert len(imgrec.RecordSource(shard)) > 0


def test_an_index_of_another_shard_is_refused(shards, tmp_path):
    first, second = sorted(shards["raw"].glob("*.tfrecord"))[:2]
    shutil.copy(first, tmp_path / "a.tfrecord")
    shutil.copy(f"{second}.idx", tmp_path / "a.tfrecord.idx")
    with pytest.raises(imgrec.InputError, match="does not match it .* run imgrec index"):
        imgrec.RecordSource(tmp_path / "a.tfrecord")
    (tmp_path / "a.tfrecord.idx").write_bytes(bytes(range(256)) * 40)  # not even text
    with pytest.raises(imgrec.InputError, match="a.tfrecord.idx: line 1 .*imgrec index") as e:
        imgrec.RecordSource(tmp_path / "a.tfrecord")
    assert len(str(e.value).replace(str(tmp_path), "")) < 200 and "\n" not in str(e.value)


def test_a_damaged_record_is_an_error_naming_it_and_the_others_read(shards, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(shards["raw"], out)
    shard = sorted(out.glob("*.tfrecord"))[0]
    source = imgrec.RecordSource(out)
    _, _, offset = source.locate(1)
    data = bytearray(shard.read_bytes())
    data[offset + 40] ^= 0xFF
    shard.write_bytes(bytes(data))
    source = imgrec.RecordSource(out)
    with pytest.raises(imgrec.ShardError, match=rf"record 1 \(byte offset {offset}\): data CRC"):
        source[1]
    assert all(source[i]["image"].size for i in range(len(source)) if i != 1)


def _names(source, indices) -> list[str]:
    return [source[i]["filename"] for i in indices]


def test_threads_forked_and_spawned_processes_read_the_same(shards):
    source = imgrec.RecordSource(shards["encoded"])
    want = _names(source, range(len(source)))  # the parent has its files open
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda i: source[i]["filename"], range(len(source)))) == want
    # resized and cropped in four threads at once (each its own resize buffers): the images
    # read one at a time
    cropped = imgrec.RecordSource(shards["encoded"], resize=(21, 17), crop="random")
    alone = [cropped[i]["image"] for i in range(len(cropped))] * 20
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: cropped[i % len(cropped)]["image"], range(len(alone))))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            parts = pool.starmap(_names, [(source, range(k, len(source), 2)) for k in (0, 1)])
        assert sorted(parts[0] + parts[1]) == sorted(want), method
    assert pickle.loads(pickle.dumps(source))[5]["filename"] == want[5]
