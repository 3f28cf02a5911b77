"""The command line: output streams, JSON, exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fixtures import run
from PIL import Image

from imgrec.cli import cli


def test_pack_inspect_decode_end_to_end(tree, tmp_path):
    src, files = tree
    out = tmp_path / "out"
    r = run("pack", src, out)
    assert r.exit_code == 0, r.output
    assert "Packed 13 images into 1 shard(s)" in r.stdout
    assert "Ignored 1 non-image file(s); skipped 0." in r.stdout
    assert "Traceback" not in r.stderr

    r = run("inspect", out, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["records"] == 13
    assert info["labels"] == {"cat": 4, "dog": 4, "fish": 4, "(unlabelled)": 1}
    assert info["shards"][0]["records"] == 13 and info["shards"][0]["path"].endswith(".tfrecord")
    assert info["dtypes"] == {"uint16": 1, "uint8": 12}

    arrays = tmp_path / "arrays"
    r = run("decode", out, "-o", arrays, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["written"] == 13
    got = np.load(arrays / "cat" / "cat0.npy")
    with Image.open(files["cat0"]) as im:
        want = tf.image.convert_image_dtype(np.asarray(im), tf.float32).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert (arrays / "loose.npy").exists()


def test_inspect_text_reports_sizes_and_labels(packed_tree):
    out, _ = packed_tree(format="raw")
    r = run("inspect", out)
    assert r.exit_code == 0, r.output
    assert "records:   13" in r.stdout
    assert "raw 13" in r.stdout
    assert "of the decoded uint8 size" in r.stdout
    assert "dog" in r.stdout


def test_inspect_reads_loose_shards_and_other_tools_shards(shared_tree, packed_tree, tmp_path):
    _, files = shared_tree
    out, _ = packed_tree(shards=2)
    r = run("inspect", "--json", str(out / "data-*.tfrecord"))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["records"] == 13
    assert json.loads(r.stdout)["source"] == "records"

    # A shard in the classic inception build_image_data.py layout, written by TensorFlow.
    other = tmp_path / "train-00000-of-00001"
    jpeg = files["cat1"].read_bytes()
    with tf.io.TFRecordWriter(str(other)) as w:
        for label in (1, 2, 2):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }))  # fmt: skip
            w.write(ex.SerializeToString())
    r = run("inspect", other, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["records"] == 3 and info["labels"] == {"1": 1, "2": 2}
    assert info["height"] == {"min": 25, "max": 25}  # read from the JPEG header


def test_decode_png_and_stats(tree, tmp_path):
    src, files = tree
    out = tmp_path / "out"
    run("pack", src / "dog", out)
    r = run("decode", out, "-o", tmp_path / "png", "--to", "png")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "png" / "dog0.png") as back, Image.open(files["dog0"]) as im:
        assert np.array_equal(np.asarray(back), np.asarray(im))
    r = run("decode", out, "--stats", "--json")
    stats = json.loads(r.stdout)["stats"]
    with Image.open(files["dog2"]) as im:
        gray = np.asarray(im) / 255.0
    assert stats["1"]["images"] == 1
    assert stats["1"]["mean"][0] == pytest.approx(gray.mean(), abs=1e-6)
    assert stats["1"]["max"][0] == pytest.approx(gray.max(), abs=1e-7)


def test_non_empty_out_is_a_one_line_error(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    r = run("pack", src, out)
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: {out} is not empty; pass --overwrite to replace it"
    assert r.stdout == ""


def test_missing_source_names_the_path(tmp_path):
    r = run("pack", tmp_path / "nope", tmp_path / "out")
    assert r.exit_code == 1
    assert "nope" in r.stderr and "Traceback" not in r.stderr


def test_on_error_fail_exit_code(tree, tmp_path):
    src, _ = tree
    (src / "cat" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 30)
    r = run("pack", src, tmp_path / "out", "--on-error", "fail")
    assert r.exit_code == 1
    assert "bad.jpg" in r.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_usage_errors_exit_2(tree, tmp_path):
    src, _ = tree
    assert run("pack", src, tmp_path / "o", "--format", "webp").exit_code == 2
    assert run("decode", tmp_path).exit_code == 2  # neither -o nor --stats


def test_pack_json_is_one_object(tree, tmp_path):
    src, _ = tree
    r = run("pack", src, tmp_path / "out", "--json")
    info = json.loads(r.stdout)
    assert info["records"] == 13 and info["manifest"].endswith("manifest.json")


@pytest.mark.parametrize("command", ["pack", "inspect", "decode"])
def test_every_command_has_help_with_an_example(command):
    r = run(command, "-h")
    assert r.exit_code == 0
    assert "Example:" in r.stdout
    import click

    for param in cli.commands[command].params:
        if isinstance(param, click.Option):
            assert param.help, f"{command} {param.opts} has no help text"


def test_help_and_pack_do_not_import_tensorflow(tree, tmp_path):
    src, _ = tree
    code = (
        "import sys\n"
        "from imgrec.cli import cli\n"
        f"cli(['pack', {str(src)!r}, {str(tmp_path / 'o')!r}, '-q'], standalone_mode=False)\n"
        f"cli(['inspect', {str(tmp_path / 'o')!r}], standalone_mode=False)\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_python_dash_m_works():
    result = subprocess.run(
        [sys.executable, "-m", "imgrec", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "0.1.0" in result.stdout


def test_preview_contact_sheet_has_the_expected_grid(tmp_path):
    from imgrec.reading.preview import CAPTION, TILE

    src = tmp_path / "src"
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for name, colour in colours.items():
        (src / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20 + i, 10), colour).save(src / name / f"{i}.png")
    deep = np.full((8, 8), 13107, np.uint16)  # 16-bit gray at exactly 0.2
    Image.frombytes("I;16", (8, 8), deep.astype("<u2").tobytes()).save(src / "red" / "deep.png")
    out = tmp_path / "out"
    run("pack", src, out)
    r = run("inspect", out, "--preview", tmp_path / "grid.png", "--preview-count", "6", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)["preview"]
    assert info["labels"] == ["blue", "green", "red", "blue", "green", "red"]
    assert (info["columns"], info["rows"]) == (3, 2)
    with Image.open(tmp_path / "grid.png") as sheet:
        assert sheet.size == (3 * TILE, 2 * (TILE + CAPTION))
        for i, label in enumerate(info["labels"]):
            x, y = (i % 3) * TILE + TILE // 2, (i // 3) * (TILE + CAPTION) + TILE // 2
            pixel = sheet.getpixel((x, y))
            if pixel != colours[label]:  # the 16-bit gray image among the reds
                assert label == "red" and pixel == (51, 51, 51)


def test_preview_of_a_dataset_of_no_records_says_there_is_nothing_to_preview(tmp_path):
    from samples import empty_dataset

    out = empty_dataset(tmp_path)
    r = run("inspect", out, "--preview", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    assert "nothing to preview: no readable records; no file written" in r.stdout
    assert not (tmp_path / "grid.png").exists()
    r = run("inspect", out, "--preview", tmp_path / "grid.png", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["preview"]["path"] is None


def test_json_stays_pure_while_progress_bars_draw_on_a_terminal(tree, tmp_path):
    """Under a pseudo-terminal (so progress is on), stdout still carries only the JSON."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    src, _ = tree
    out = tmp_path / "out"
    master, slave = pty.openpty()
    # A real terminal's size (a new pty has 0 columns, where tqdm draws nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.run(
        [sys.executable, "-m", "imgrec", "pack", str(src), str(out), "--json", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=slave,
        timeout=120,  # nobody reads the terminal until the pack ends: never wait for ever
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the terminal's output did not end within a minute"
        if not select.select([master], [], [], remaining)[0]:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["records"] == 13  # the whole of stdout is one object
    terminal = b"".join(chunks).decode(errors="replace")
    assert "scan" in terminal and "img" in terminal  # the bars were drawn, on stderr


def test_exit_codes_are_documented():
    commands = (Path(__file__).parents[2] / "docs" / "commands.md").read_text()
    exit_codes = commands.split("### Output and exit codes", 1)[1].split("\n#", 1)[0]
    for code in ("0 success", "1 failure", "2 usage", "130 interrupted"):
        assert code in exit_codes


@pytest.mark.parametrize("command", ["pack", "convert"])
def test_the_cli_leaves_every_default_to_the_library(command, monkeypatch):
    """An option not given is not passed (None) or is the library's own default: the
    defaults live in PackOptions, once."""
    import dataclasses

    import click

    from imgrec.format.options import PackOptions

    library = {f.name: f.default for f in dataclasses.fields(PackOptions)}
    for param in cli.commands[command].params:
        key = {"fmt": "format"}.get(param.name or "", param.name)
        unset = (
            param.default in (None, (), click.core.UNSET)
            if hasattr(click.core, "UNSET")
            else (param.default in (None, ()))
        )
        if key in library and not unset:
            assert param.default == library[key], (command, param.name)
    monkeypatch.undo()  # conftest's one-process default for in-process packs, undone here
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert PackOptions().worker_count == 3  # the default: one process per core
    assert PackOptions(workers=1).worker_count == 1


@pytest.mark.slow
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_output_closed_early_stops_quietly_with_sigpipes_status(tree, tmp_path, json_flag):
    """`imgrec inspect OUT | head -1`: the reader is gone before imgrec writes (its read end
    is closed here at once), so every write meets a closed pipe."""
    src, _ = tree
    out = tmp_path / "out"
    assert run("pack", src, out).exit_code == 0
    cmd = [sys.executable, "-m", "imgrec", "inspect", str(out), *json_flag]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (141, "")  # not 1, which means an Error: line
