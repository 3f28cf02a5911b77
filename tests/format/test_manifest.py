"""manifest.json as input: malformed manifests, manifests pointing outside their folder, and
manifests from a newer imgrec are one clear error line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures import names_in, run
from processes import one_error_line

import imgrec
import imgrec.images.loading
import imgrec.packing.driver
import imgrec.packing.lock
from imgrec import InputError, pack


def tree_digest(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (except under ``skip``) by relative path: its sha256."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def _dataset_with(tmp_path: Path, packed_tree: Any, manifest: Any) -> Path:
    """A copy of a packed dataset (2 shards) under ``tmp_path``, with this manifest."""
    packed, _ = packed_tree(shards=2)
    ds = tmp_path / "ds"
    ds.mkdir()
    for p in packed.iterdir():
        if p.name != "manifest.json":
            shutil.copy(p, ds / p.name)
    (ds / "manifest.json").write_text(
        json.dumps(manifest(json.loads((packed / "manifest.json").read_text())))
    )
    return ds


MALFORMED = {
    "empty shard": (lambda good: {"shards": [{}]}, "shards[0]"),
    "shard a string": (lambda good: {"shards": ["x"]}, "shards[0]"),
    "file a number": (lambda good: {"shards": [{"file": 5}]}, "shards[0]"),
    "records a word": (
        lambda good: {"shards": good["shards"], "stats": {"records": "many"}},
        "stats",
    ),
    "one stats value a word": (
        lambda good: {**good, "stats": {**good["stats"], "records": "many"}},
        "stats.records",
    ),
    "height not a span": (
        lambda good: {**good, "stats": {**good["stats"], "height": "x"}},
        "stats.height",
    ),
    "labels a list": (
        lambda good: {**good, "stats": {**good["stats"], "labels": [1, 2]}},
        "stats.labels",
    ),
}


@pytest.mark.parametrize("command", ["inspect", "verify", "index"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_manifest_is_one_error_line(tmp_path, packed_tree, case, command):
    manifest, field = MALFORMED[case]
    ds = _dataset_with(tmp_path, packed_tree, manifest)
    before = tree_digest(tmp_path)
    r = run(command, ds)
    assert r.exit_code == 1, r.output
    line = one_error_line(r.stderr)
    assert str(ds / "manifest.json") in line
    assert f"malformed manifest: {field}" in line
    assert tree_digest(tmp_path) == before  # index wrote nothing either


OUTSIDE = {
    "file climbs out": ("file", "../victim/v.tfrecord"),
    "file absolute": ("file", "/etc/passwd"),
    "index climbs out": ("index", "../x.idx"),
}


@pytest.mark.parametrize("command", ["inspect", "verify", "index"])
@pytest.mark.parametrize("case", list(OUTSIDE))
def test_manifest_pointing_outside_its_folder_is_refused(tmp_path, packed_tree, case, command):
    key, value = OUTSIDE[case]

    def pointing_out(good: dict[str, Any]) -> dict[str, Any]:
        good["shards"][0][key] = value
        return good

    ds = _dataset_with(tmp_path, packed_tree, pointing_out)
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.copy(next(ds.glob("*.tfrecord")), victim / "v.tfrecord")  # a real shard to index
    before = tree_digest(tmp_path, skip=ds)
    r = run(command, ds)
    assert r.exit_code == 1, r.output
    line = one_error_line(r.stderr)
    assert str(ds / "manifest.json") in line and f"shards[0].{key}" in line
    assert tree_digest(tmp_path, skip=ds) == before
    assert names_in(victim) == ["v.tfrecord"]
    assert not (tmp_path / "x.idx").exists()
    assert not Path("/etc/passwd.idx").exists()


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
