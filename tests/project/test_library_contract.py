"""What the library promises its callers: no process-wide state changed (Pillow's limits,
warning filters), safe on threads, and typed results with to_dict()."""

from __future__ import annotations

import json
import threading
import time
import warnings

from corpus import _bomb_png
from fixtures import encode, smooth_rgb
from PIL import Image
from samples import icns

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import PackOptions, pack
from imgrec.images import loading
from imgrec.images.loading import NotAnImage, SkipImage


def test_packs_and_loads_on_threads_leave_pillow_and_warnings_alone(tree, tmp_path):
    src, files = tree
    (src / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    liar = encode(Image.fromarray(smooth_rgb(300, 300, 3)), "PNG")
    (src / "liar.icns").write_bytes(icns(liar))
    paths = [*files.values(), src / "bomb.png", src / "liar.icns"]
    pixels_before = Image.MAX_IMAGE_PIXELS
    filters_before = list(warnings.filters)
    seen: list[str] = []
    errors: list[BaseException] = []
    stop_watching = threading.Event()
    samples = 0

    def watch() -> None:
        nonlocal samples
        while not stop_watching.is_set():
            samples += 1
            pixels, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
            if pixels != pixels_before:
                seen.append(f"PIL.Image.MAX_IMAGE_PIXELS was {pixels}")
            if filters != filters_before:
                seen.append(f"warnings.filters was {filters[:3]}...")
            time.sleep(0)

    def packs(n: int) -> None:
        try:
            for round_ in range(3):
                opts = PackOptions(max_pixels=60_000, overwrite=round_ > 0, shards=2)
                imgrec.pack(src, tmp_path / f"out{n}", opts)
        except BaseException as e:
            errors.append(e)

    def loads() -> None:
        try:
            for _ in range(10):
                for path in paths:
                    try:
                        imgrec.images.loading.load_file(
                            path, imgrec.images.loading.ImageOptions(max_pixels=60_000)
                        )
                    except (NotAnImage, SkipImage):
                        pass
        except BaseException as e:
            errors.append(e)

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=packs, args=(n,)) for n in range(4)]
    workers += [threading.Thread(target=loads) for _ in range(2)]
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    stop_watching.set()
    watcher.join(timeout=10)
    assert not any(t.is_alive() for t in [*workers, watcher]), "a thread did not finish in time"
    assert not errors, errors
    assert samples > 100
    assert not seen, sorted(set(seen))
    assert Image.MAX_IMAGE_PIXELS == pixels_before
    assert list(warnings.filters) == filters_before
    for n in range(4):
        manifest = json.loads((tmp_path / f"out{n}" / "manifest.json").read_text())
        reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
        assert reasons["bomb.png"].startswith("too-many-pixels")
        assert reasons["liar.icns"].startswith("too-many-pixels: it holds a 300x300 image")


def test_every_result_of_the_library_is_typed_with_to_dict(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    planned = imgrec.plan(src, out, PackOptions(shards=2))
    assert planned.to_dict()["images"] == 13 and not out.exists()
    pack(src, out, PackOptions(shards=2))
    assert imgrec.inspect([str(out)]).to_dict()["records"] == 13
    assert imgrec.verify([str(out)]).to_dict()["ok"] is True
    decoded = imgrec.decode(out, stats=True, limit=3)
    assert decoded.to_dict()["records"] == 3 and decoded.problems == []
    index = out / "data-00000-of-00002.tfrecord.idx"
    before = index.read_bytes()
    index.unlink()
    assert imgrec.write_index(out / "data-00000-of-00002.tfrecord") == index
    assert index.read_bytes() == before


def test_loading_in_threads_changes_no_process_wide_state(tree):
    _, files = tree
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    seen: set[object] = set()
    stop = threading.Event()
    deadline = time.monotonic() + 300  # past it the watch ends, and the test fails

    def watch() -> None:
        while not stop.is_set():
            if time.monotonic() > deadline:
                seen.add("the loading threads were still running after 300 s")
                return
            seen.add(Image.MAX_IMAGE_PIXELS)
            if warnings.filters != filters:
                seen.add("warning filters changed")

    def load_all() -> None:
        for _ in range(8):  # each load would make a change the watcher sees
            for path in files.values():
                try:
                    loading.probe_file(path)
                    loading.load_file(path, loading.ImageOptions())
                except (loading.NotAnImage, loading.SkipImage):
                    pass

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=load_all) for _ in range(4)]
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    stop.set()
    watcher.join(timeout=10)
    assert seen == {limit}
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters
