"""`imgrec pack --runner beam`: the Beam pipeline (DirectRunner, in this process) writes
exactly what the local pack writes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import DIRECT, beam_pack, files_of, run

from imgrec import PackOptions, pack
from imgrec.core import spool
from imgrec.core.errors import DependencyError, InputError
from imgrec.core.progress import no_progress
from imgrec.core.storage import Folder
from imgrec.packing import scan
from imgrec.packing.executors import beam
from imgrec.packing.executors.beam import pipeline_flags
from imgrec.packing.scan import listing

pytestmark = pytest.mark.slow


HINT = 'Apache Beam is not installed (needed by --runner beam): pip install "imgrec[beam]"'


@pytest.mark.parametrize(
    "options",
    [
        {"shards": 3},
        {"split": (("train", 0.6), ("val", 0.2), ("test", 0.2)), "shards": 4, "seed": 3},
        {"format": "raw", "shuffle": False, "name": "pixels"},
    ],
    ids=["shards", "split", "raw-unshuffled"],
)
def test_beam_output_is_byte_identical_to_the_local_pack(src, tmp_path, options):
    opts = PackOptions(**options)
    local = pack(src, tmp_path / "local", opts).to_dict()
    manifest = beam_pack(src, tmp_path / "beam", opts)
    assert manifest == local
    assert any(s["path"] == "dog/cut.png" for s in manifest["skipped"])  # skipped by a worker
    expected = files_of(tmp_path / "local")
    assert files_of(tmp_path / "beam") == expected
    # shards, index files, manifest, and TFDS's dataset_info, features and label names
    assert len(expected) == 2 * len(local["shards"]) + 4


def test_multi_processing_workers_give_the_same_bytes(src, tmp_path):
    # Workers in other processes: the functions and elements go through pickling, as on a
    # real runner's workers.
    opts = PackOptions(shards=2)
    pack(src, tmp_path / "local", opts)
    options = ("direct_running_mode=multi_processing", "direct_num_workers=2")
    beam_pack(src, tmp_path / "beam", replace(opts, beam_options=options))
    assert files_of(tmp_path / "beam") == files_of(tmp_path / "local")


def test_headers_are_read_in_the_pipeline_and_the_driver_keeps_the_scan_on_disk(
    src, tmp_path, monkeypatch
):
    runs = tmp_path / "runs"
    runs.mkdir()
    look = beam.probe_task

    def counted(task, *args):  # pickled with the pipeline: it leaves its mark in a file
        (runs / task[0].rsplit("/", 1)[-1]).touch()
        return look(task, *args)

    def on_the_driver(*args, **kwargs):
        raise AssertionError("the Beam driver read the headers itself")

    monkeypatch.setattr(beam, "probe_task", counted)
    monkeypatch.setattr(scan, "scan_source", on_the_driver)
    opts = PackOptions(runner="DirectRunner", beam_options=DIRECT)
    out = Folder(tmp_path / "out")
    (tmp_path / "out").mkdir()  # as pack's lock makes it
    executor = beam.BeamExecutor("DirectRunner", DIRECT)
    found = executor.scan_source(src, out, opts, no_progress)
    try:
        assert isinstance(found.candidates, spool.Values)  # in a file, not in memory
        walked = listing(src, out.where, opts, no_progress)
        looks = scan.probe_items(walked.items, opts.max_pixels, 1)
        looked = zip(walked.items, looks, strict=True)
        expected = scan.classify(src, opts, walked, looked, no_progress)
        assert list(found.candidates) == expected.candidates
        assert list(found.estimate) == list(expected.estimate)
        assert (found.skipped, found.ignored) == (expected.skipped, expected.ignored)
        assert len(list(runs.iterdir())) >= 1  # the headers were read by pipeline tasks
    finally:
        executor.close()
    assert isinstance(found.store, spool.Disk) and not found.store.folder.exists()


def test_beam_packs_a_from_list(src, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("loose.png,misc\ncat/cat1.jpg,cat\nfish/anim.gif,misc\ndog/cut.png,dog\n")
    opts = PackOptions(from_list=str(listing), shards=2)
    pack(src, tmp_path / "local", opts)
    manifest = beam_pack(src, tmp_path / "beam", opts)
    assert manifest["records"] == 3 and manifest["labels"] == ["cat", "dog", "misc"]
    assert files_of(tmp_path / "beam") == files_of(tmp_path / "local")


def test_cli_runner_beam_gives_the_local_output(src, tmp_path):
    args = ["pack", str(src), "--split", "train=0.75,val=0.25", "--json"]
    r = run(*args[:2], tmp_path / "local", *args[2:])
    assert r.exit_code == 0, r.output
    options = [x for option in DIRECT for x in ("--beam-option", option)]
    r = run(*args[:2], tmp_path / "beam", *args[2:], "--runner", "beam")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["records"] == 13
    assert files_of(tmp_path / "beam") == files_of(tmp_path / "local")
    r = run(*args[:2], tmp_path / "beam2", *args[2:], "--runner", "DirectRunner", *options)
    assert r.exit_code == 0, r.output
    assert files_of(tmp_path / "beam2") == files_of(tmp_path / "local")


def test_on_error_fail_stops_with_the_first_skipped_image(src, tmp_path):
    out = tmp_path / "beam"
    with pytest.raises(InputError, match=r"cut\.png: truncated.*--on-error fail"):
        beam_pack(src, out, PackOptions(on_error="fail"))
    assert not (out / "manifest.json").exists()


def test_checking_the_options_leaves_no_folder_in_the_users_temp(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    beam.BeamExecutor("beam", DIRECT).check()
    assert list(temp.iterdir()) == []  # Beam's beam-pipeline-temp* of the unrun pipeline


def test_missing_apache_beam_is_a_one_line_error(tree, tmp_path, monkeypatch):
    src, _ = tree
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam now fails
    with pytest.raises(DependencyError, match="pip install"):
        pack(src, tmp_path / "out", PackOptions(runner="beam"))
    r = run("pack", src, tmp_path / "out", "--runner", "beam")
    assert r.exit_code == 1
    assert r.output == f"Error: {HINT}\n"
    assert not (tmp_path / "out").exists()


def test_beam_options_become_pipeline_flags():
    assert pipeline_flags("beam", []) == []
    flags = pipeline_flags(
        "DataflowRunner", ["project=p", "--region=europe-west1", "save_main_session", "a=b=c"]
    )
    assert flags == [
        "--runner=DataflowRunner",
        "--project=p",
        "--region=europe-west1",
        "--save_main_session",
        "--a=b=c",
    ]
    assert pipeline_flags("beam", ["runner=FlinkRunner"]) == ["--runner=FlinkRunner"]
    with pytest.raises(InputError, match="given twice"):
        pipeline_flags("SparkRunner", ["runner=FlinkRunner"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        pipeline_flags("beam", ["=3"])


def test_cli_refuses_mixed_runner_options(tree, tmp_path):
    src, _ = tree
    out = str(tmp_path / "out")
    r = run("pack", src, out, "--beam-option", "project=p")
    assert r.exit_code == 2 and "--runner beam" in r.output
    r = run("pack", src, out, "--runner", "beam", "--workers", "2")
    assert r.exit_code == 2 and "direct_num_workers" in r.output
    pytest.importorskip("apache_beam")
    r = run("pack", "s3://bucket/photos", out)
    assert r.exit_code == 1 and "SRC is a URL" in r.output and "add --runner beam" in r.output
    r = run("pack", "nofs://bucket/photos", out, "--runner", "beam")
    assert r.output == (
        "Error: nofs://bucket/photos: Beam has no filesystem for nofs:// here;"
        " install the Beam extra for it\n"
    )
    assert r.exit_code == 1
    assert not Path(out).exists()


def test_help_and_local_pack_do_not_import_apache_beam(tree, tmp_path):
    src, _ = tree
    code = (
        "import sys\n"
        "from imgrec.cli import cli\n"
        "cli(['pack', '--help'], standalone_mode=False)\n"
        f"cli(['pack', {str(src)!r}, {str(tmp_path / 'o')!r}, '-q'], standalone_mode=False)\n"
        f"cli(['inspect', {str(tmp_path / 'o')!r}], standalone_mode=False)\n"
        "import imgrec.packing.executors.beam\n"
        "assert 'apache_beam' not in sys.modules, 'apache_beam was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
