"""Read-time crops in RecordSource: ``crop="center"`` gives imgrec.dataset's pixels and
annotations exactly (JPEG windows at every DCT scale and chroma subsampling included);
``crop="random"`` draws its windows by the rule of TensorFlow's kernel (the same
distribution), from (seed, epoch, index), and moves boxes, masks and keypoints with the
pixels and the flip."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from annotated import (
    NAMES,
    draw,
    lines_up,
    mask_matches,
    same_example,
    with_shapes_and_centres,
    write_coco,
    write_masks,
)
from corpus import make_corpus
from PIL import Image

import imgrec
from imgrec import PackOptions, pack
from imgrec.reading.crops import window_of


def _by_name(ds) -> dict[str, np.ndarray]:
    return {
        name.decode("utf-8", "surrogateescape"): image for image, _, name in ds.as_numpy_iterator()
    }


def _noisy(h: int, w: int, seed: int) -> np.ndarray:
    """Detail in every channel: where a decoder's chroma upsampling goes wrong, it shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([(x * 3 + y) % 256, (x * y // 7) % 256, (y * 5) % 256], -1)
    return np.clip(smooth + rng.integers(-40, 40, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """JPEGs in 4:4:4, 4:2:2 and 4:2:0, baseline (EXIF-rotated) and progressive, large
    enough for 1/2 to 1/8 DCT scales at the sizes read; and PNGs."""
    src = tmp_path_factory.mktemp("crop-photos") / "src"
    (src / "a").mkdir(parents=True)
    for i in range(9):
        h, w = 150 + 37 * i, 410 - 29 * i
        # (Pillow writes progressive JPEGs only in 4:2:0, and without EXIF)
        extra: dict = {"progressive": True}
        if i % 2 == 0:
            exif = Image.Exif()
            exif[0x0112] = [1, 6, 3, 8, 5][i // 2]
            extra = {"exif": exif.tobytes(), "subsampling": (i // 2) % 3}
        Image.fromarray(_noisy(h, w, i)).save(src / "a" / f"p{i}.jpg", quality=88, **extra)
        if i < 3:
            Image.fromarray(_noisy(w // 2, h // 2, 10 + i)).save(src / "a" / f"q{i}.png")
    out = src.parent / "out"
    pack(src, out)
    return out


@pytest.mark.parametrize(
    "size", [(224, 224), pytest.param((64, 48), marks=pytest.mark.slow),
             pytest.param((9, 7), marks=pytest.mark.slow)],
)  # fmt: skip
def test_center_crops_are_imgrec_datasets_pixels(photos, size):
    """The window decoded at imgrec.dataset's DCT scale, oriented, resized: every pixel equal
    (this failed until imgrec.dataset's own JPEG window decode was made exact: its first
    and last columns were up to 73 levels off)."""
    want = _by_name(imgrec.dataset(photos, resize=size, crop="center", with_filenames=True))
    source = imgrec.RecordSource(photos, resize=size, crop="center")
    assert len(source) == len(want) == 12
    for i in range(len(source)):
        example = source[i]
        image = want[example["filename"]]
        assert example["image"].shape == size + (3,) == image.shape
        assert np.array_equal(example["image"], image), (size, example["filename"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["encoded", "raw"])
def test_the_corpus_center_cropped_reads_as_imgrec_dataset_reads_it(tmp_path, fmt):
    src, out = tmp_path / "src", tmp_path / "out"
    make_corpus(src, copies=1)
    pack(src, out, PackOptions(format=fmt))
    for channels, size in [(None, (9, 7)), (3, (32, 32)), (1, (64, 48))]:
        read = imgrec.dataset(out, resize=size, crop="center", channels=channels,
                              with_filenames=True)  # fmt: skip
        want = _by_name(read)
        source = imgrec.RecordSource(out, resize=size, crop="center", channels=channels)
        assert len(source) == len(want) > 50
        for i in range(len(source)):
            example = source[i]
            assert np.array_equal(example["image"], want[example["filename"]]), (
                channels, size, example["filename"],
            )  # fmt: skip


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> tuple[Path, list]:
    """Drawn rectangles with COCO boxes, polygon masks and a keypoint at each centre; and
    semantic masks; packed."""
    root = tmp_path_factory.mktemp("crop-annotated")
    src = root / "src"
    drawn = draw(src, count=12)
    coco = write_coco(drawn, root / "instances.json")
    with_shapes_and_centres(coco)
    masks = write_masks(drawn, root / "masks", border=False)
    out = root / "out"
    pack(src, out, PackOptions(annotations=str(coco), masks=str(masks)))
    return out, drawn


def test_center_cropped_annotations_are_imgrec_datasets(annotated):
    out, drawn = annotated
    source = imgrec.RecordSource(out, resize=(40, 40), crop="center")
    read = imgrec.dataset(out, resize=(40, 40), crop="center", with_filenames=True)
    want = {w["filename"].decode(): w for w in read.as_numpy_iterator()}
    assert len(source) == len(want) == len(drawn)
    dropped = 0
    for i in range(len(source)):
        got = source[i]
        same_example(got, want[got["filename"]])
        listed = next(d for d in drawn if d.rel == got["filename"])
        dropped += len(listed.boxes) - len(got["bounding_boxes"]["labels"])
    assert dropped > 0  # some objects fall outside the centre square, dropped on both paths


def _classes(out: Path, labels: np.ndarray) -> np.ndarray:
    classes = imgrec.read_manifest(out).annotations.classes
    return np.array([NAMES.index(classes[int(v)]) for v in labels], int)


def test_random_crops_move_the_annotations_with_the_pixels(annotated):
    """Boxes line up with the rectangles in the cropped, resized, sometimes flipped pixels;
    masks mark them; each keypoint sits in its box; windows and flips differ by epoch."""
    out, drawn = annotated
    source = imgrec.RecordSource(out, resize=(64, 64), crop="random", seed=5, dtype=None)
    flips, boxes = [], {}
    for epoch in range(3):
        source.set_epoch(epoch)
        for i in range(len(source)):
            ex = source[i]
            image, found = ex["image"], ex["bounding_boxes"]
            why = lines_up(image, found["boxes"], _classes(out, found["labels"]), 2.5)
            assert why is None, (epoch, ex["filename"], why)
            assert mask_matches(image, ex["segmentation_mask"][..., 0], 2) is None
            for box, mask in zip(found["boxes"], ex["object_masks"], strict=True):
                ys, xs = np.nonzero(mask)
                assert len(ys) and abs(ys.min() / 64 - box[0]) < 0.05, ex["filename"]
                assert abs((xs.max() + 1) / 64 - box[3]) < 0.05, ex["filename"]
            seen = ex["keypoints"]["visibility"][:, 0] > 0
            y, x = ex["keypoints"]["points"][seen, 0].T
            inside = found["boxes"][seen]
            assert np.all((inside[:, 0] <= y) & (y <= inside[:, 2]))
            assert np.all((inside[:, 1] <= x) & (x <= inside[:, 3]))
            boxes[epoch, i] = found["boxes"].round(4).tobytes()
            if len(found["labels"]):
                flips.append(source.get(i, epoch)["image"].tobytes() == image.tobytes())
    assert sum(boxes[0, i] != boxes[1, i] for i in range(len(source))) > len(source) // 2
    assert all(flips)  # get(i, epoch) is source[i] in that epoch


def test_random_crops_are_the_same_for_the_same_seed_epoch_and_record(annotated):
    out, _ = annotated
    a = imgrec.RecordSource(out, resize=(32, 32), crop="random", seed=1)
    b = pickle.loads(pickle.dumps(a))  # as a spawned DataLoader worker gets it
    n = len(a)
    for i in (0, 3, n - 1):
        assert np.array_equal(a[i]["image"], b.get(i, 0)["image"])
        assert np.array_equal(a[i]["image"], a[i - n]["image"])  # negative indices too
    other = imgrec.RecordSource(out, resize=(32, 32), crop="random", seed=2)
    differ = sum(not np.array_equal(a[i]["image"], other[i]["image"]) for i in range(n))
    later = sum(not np.array_equal(a[i]["image"], a.get(i, 1)["image"]) for i in range(n))
    assert differ > n // 2 and later > n // 2


def _tf_windows(hw: tuple[int, int], seeds: int) -> np.ndarray:
    import tensorflow as tf

    from imgrec.reading.crops import window_function

    @tf.function
    def windows(seeds: tf.Tensor) -> tf.Tensor:
        def one(seed):
            return window_function(tf, "random", (224, 224), seed)(tf.constant(hw))

        return tf.map_fn(one, seeds, fn_output_signature=tf.int32)

    return windows(tf.reshape(tf.range(2 * seeds, dtype=tf.int64), [seeds, 2])).numpy()


@pytest.mark.parametrize(
    "hw", [(375, 500), pytest.param((64, 48), marks=pytest.mark.slow),
           pytest.param((6, 5), marks=pytest.mark.slow)],
)  # fmt: skip
def test_random_windows_have_tensorflows_distribution(hw):
    """4,000 windows each way, of one image size: inside the image, each area at least 10%
    of it, aspect ratios within 3/4 to 4/3 (up to one pixel's rounding), and the mean and
    quartiles of area, aspect and position within a few percent of TensorFlow's kernel's;
    as often the whole image (the fallback, common in tiny images)."""
    n = 4000
    ours = np.array([window_of("random", hw, (224, 224), (0, 0, i)) for i in range(n)])
    theirs = _tf_windows(hw, n)
    h, w = hw
    for windows in (ours, theirs):
        y, x, th, tw = windows.T
        assert np.all((y >= 0) & (x >= 0) & (y + th <= h) & (x + tw <= w))
        assert np.all(th * tw >= 0.1 * h * w)
        partial = (th < h) | (tw < w)
        aspect = tw[partial] / th[partial]
        assert np.all((aspect >= 3 / 4 - 1 / th[partial]) & (aspect <= 4 / 3 + 1 / th[partial]))

    def stats(windows: np.ndarray) -> np.ndarray:
        y, x, th, tw = windows.T.astype(float)
        area = th * tw / (h * w)
        centre_y, centre_x = (y + th / 2) / h, (x + tw / 2) / w
        whole = np.mean((th == h) & (tw == w))
        return np.array([*np.quantile(area, [0.25, 0.5, 0.75]), area.mean(),
                         np.median(tw / th), centre_y.mean(), centre_x.mean(), whole])  # fmt: skip

    assert np.allclose(stats(ours), stats(theirs), atol=0.03), (stats(ours), stats(theirs))


def test_crop_arguments_are_checked(photos):
    with pytest.raises(imgrec.ImgrecError, match="needs resize="):
        imgrec.RecordSource(photos, crop="center")
    with pytest.raises(imgrec.ImgrecError, match="crop='middle'"):
        imgrec.RecordSource(photos, resize=(8, 8), crop="middle")
    for seed in (-1, 1.5, True):
        with pytest.raises(imgrec.ImgrecError, match="seed="):
            imgrec.RecordSource(photos, resize=(8, 8), crop="random", seed=seed)
    source = imgrec.RecordSource(photos, resize=(8, 8), crop="random")
    with pytest.raises(imgrec.ImgrecError, match="epoch="):
        source.set_epoch(-1)
