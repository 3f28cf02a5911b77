"""One pack driver for every executor: the drift bugs of the time when the Beam driver was a
copy of the local one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures import beam_pack, names_in

import imgrec
from imgrec import InputError, OutputError, PackOptions, pack
from imgrec.format.manifest import Manifest


def test_pack_returns_the_typed_manifest_it_wrote(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    manifest = pack(src, out, PackOptions(split=(("train", 0.5), ("val", 0.5))))
    assert isinstance(manifest, Manifest)
    written = json.loads((out / "manifest.json").read_text())
    assert json.loads(json.dumps(manifest.to_dict())) == written
    assert imgrec.read_manifest(out) == manifest
    assert manifest.records == 13 and set(manifest.splits or {}) == {"train", "val"}


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


@pytest.mark.slow
def test_a_failed_beam_run_removes_what_its_workers_left_half_written(tree, tmp_path, monkeypatch):
    pytest.importorskip("apache_beam")
    from imgrec.packing.executors import tasks

    src, _ = tree
    out = tmp_path / "out"

    def killed_mid_write(folder: Path, spec, results):
        # What a worker killed while writing leaves: a temporary file, never a final name.
        (folder / f".{spec.name}.incomplete").write_bytes(b"half a shard")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(tasks, "write_shard", killed_mid_write)
    with pytest.raises(OutputError, match="--resume"):
        beam_pack(src, out, replace(PackOptions(), shards=2))
    assert not [name for name in names_in(out) if name.endswith(".incomplete")]
