"""One pack driver for every executor, one typed API: the drift bugs of the time when the
Beam driver was a copy of the local one, and what the library returns."""

from __future__ import annotations

import json
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import beam_pack, disk_full_on, files_of, names_in, run
from PIL import Image

import imgrec
from imgrec import InputError, OutputError, PackOptions, pack
from imgrec.format.manifest import Manifest
from imgrec.images import loading


def test_pack_returns_the_typed_manifest_it_wrote(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(split=(("train", 0.5), ("val", 0.5))))
    assert isinstance(manifest, Manifest)
    written = json.loads((out / "manifest.json").read_text())
    assert json.loads(json.dumps(manifest.to_dict())) == written
    assert imgrec.read_manifest(out) == manifest
    assert manifest.records == 13 and set(manifest.splits or {}) == {"train", "val"}


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


def test_a_manifest_from_a_newer_imgrec_names_the_version_to_install(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    pack(src, out)
    data = json.loads((out / "manifest.json").read_text())
    data.update(format_version=2, imgrec="9.1.0")
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"format 2.*upgrade to imgrec 9\.1\.0 or later"):
        imgrec.read_manifest(out)
    r = run("inspect", out)
    assert r.exit_code == 1 and "upgrade to imgrec 9.1.0" in r.stderr


@pytest.mark.parametrize(
    ("src", "options", "message"),
    [
        ("s3://bucket/photos", PackOptions(), "SRC is a URL.*add --runner beam"),
        (None, PackOptions(beam_options=("project=p",)), "Beam options are for Beam runs"),
        (None, PackOptions(runner="SomeRunner"), "unknown runner 'SomeRunner'"),
        (None, PackOptions(split=(("a", 0.5), ("b", 0.6))), "add up to 1"),
    ],
    ids=["url-on-local-runner", "beam-option-on-local", "unknown-runner", "split-ratios"],
)
def test_plan_and_pack_accept_and_refuse_the_same(tree, tmp_path, src, options, message):
    src = src or tree[0]
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        imgrec.plan(src, out, options)
    with pytest.raises(InputError, match=message):
        pack(src, out, options)
    assert not out.exists()


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


def test_ctrl_c_suggests_resume_only_for_pack(shared_tree, packed_tree, tmp_path, monkeypatch):
    src, _ = shared_tree
    out, _ = packed_tree()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("imgrec.checking.summary.summarize", interrupted)
    r = run("inspect", out)
    assert r.exit_code == 130
    assert r.stderr == "Interrupted.\n"
    monkeypatch.setattr("imgrec.packing.executors.local.LocalExecutor.scan_source", interrupted)
    r = run("pack", src, tmp_path / "out2")
    assert r.exit_code == 130 and "imgrec pack --resume" in r.stderr


@pytest.mark.slow
def test_a_local_resume_of_an_interrupted_beam_run_leaves_no_journal(tree, tmp_path, monkeypatch):
    pytest.importorskip("apache_beam")
    from imgrec.packing.executors import beam

    src, _ = tree
    opts = PackOptions(shards=3)
    pack(src, tmp_path / "whole", opts)
    out = tmp_path / "out"
    monkeypatch.setattr(beam, "write_shard", disk_full_on("data-00001-of-00003.tfrecord",
                                                          beam.write_shard))  # fmt: skip
    with pytest.raises(OutputError, match="--resume"):
        beam_pack(src, out, opts)
    assert ".imgrec-journal.d" in names_in(out)
    pack(src, out, opts, resume=True)  # the local runner finishes what Beam started
    assert names_in(out) == names_in(tmp_path / "whole")
    assert files_of(out) == files_of(tmp_path / "whole")


@pytest.mark.slow
def test_a_failed_beam_run_removes_what_its_workers_left_half_written(tree, tmp_path, monkeypatch):
    pytest.importorskip("apache_beam")
    from imgrec.packing.executors import beam

    src, _ = tree
    out = tmp_path / "out"

    def killed_mid_write(folder: Path, spec, results):
        # What a worker killed while writing leaves: a temporary file, never a final name.
        (folder / f".{spec.name}.incomplete").write_bytes(b"half a shard")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(beam, "write_shard", killed_mid_write)
    with pytest.raises(OutputError, match="--resume"):
        beam_pack(src, out, replace(PackOptions(), shards=2))
    assert not [name for name in names_in(out) if name.endswith(".incomplete")]
