"""pack --from-list, --dry-run, and paths from stdin."""

from __future__ import annotations

import json

from fixtures import run


def test_from_list_text_and_csv_labels(tree, tmp_path):
    src, _ = tree
    listing = tmp_path / "list.txt"
    listing.write_text("dog/dog1.jpg\ncat/cat0.png\n\ncat/cat0.png\nnowhere/gone.png\n")
    out = tmp_path / "out"
    r = run("pack", src, out, "--from-list", listing, "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["records"] == 2 and m["labels"] == ["cat", "dog", "nowhere"]
    assert m["skipped"] == [
        {
            "path": "nowhere/gone.png",
            "reason": "missing: named by --from-list, but there is no such file",
        }
    ]
    table = tmp_path / "labels.csv"
    table.write_text("path,label\ndog/dog1.jpg,pet\nfish/fish0.png,food\nloose.png,pet\n")
    r = run("pack", src, tmp_path / "out2", "--from-list", table, "--json")
    m = json.loads(r.stdout)
    assert m["labels"] == ["food", "pet"] and m["stats"]["labels"] == {"pet": 2, "food": 1}


def test_from_list_on_stdin_and_outside_paths(tree, tmp_path):
    src, _ = tree
    r = run("pack", src, tmp_path / "out", "--from-list", "-", "--json", stdin="fish/fish1.jpg\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["records"] == 1
    r = run("pack", src, tmp_path / "o2", "--from-list", "-", stdin="../elsewhere.png\n")
    assert r.exit_code == 1 and "outside SRC" in r.stderr


def test_dry_run_writes_nothing_and_matches_the_real_plan(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    r = run("pack", src, out, "--dry-run", "--json", "--format", "raw", "--shards", "3")
    assert r.exit_code == 0, r.output
    planned = json.loads(r.stdout)
    assert not out.exists()
    assert planned["images"] == 13 and planned["labels"]["cat"] == 4
    r = run("pack", src, out, "--json", "--format", "raw", "--shards", "3")
    manifest = json.loads(r.stdout)
    assert planned["shards"][0]["shards"] == len(manifest["shards"])
    stored = manifest["stats"]["stored_bytes"]
    assert abs(planned["estimated_bytes"] - stored) <= 0.3 * stored
    r = run("pack", src, tmp_path / "o2", "--dry-run")
    assert "Dry run: nothing written. 13 images" in r.stdout and "Estimated size" in r.stdout


def test_paths_from_stdin(packed_tree):
    out, _ = packed_tree(shards=2)
    shards = "\n".join(str(p) for p in sorted(out.glob("*.tfrecord"))) + "\n"
    r = run("inspect", "-", "--json", stdin=shards)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["records"] == 13
    r = run("verify", "-", stdin=shards)
    assert r.exit_code == 0 and "OK" in r.stdout
