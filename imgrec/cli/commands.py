"""The ``imgrec`` command: a thin Click layer over the library.

Parses options, calls one library function, renders text or JSON. TensorFlow is imported
only inside ``decode``, so ``imgrec --help``, ``pack`` and ``inspect`` start fast.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import click

from .. import __version__
from .common import (
    CONTEXT,
    emit_json,
    errors_to_click,
    expand,
    interrupted,
    json_option,
    output_closed,
    progress_bars,
    quiet_beam_logs,
    quiet_option,
)
from .pack import convert, pack
from .show import print_summary


class _Group(click.Group):
    """The ``imgrec`` group: a Ctrl-C while Click parses the command line, before a command
    runs, stops as one within a command does (``Interrupted.``, 130), not with Click's
    ``Aborted!`` and exit 1, which says a failure."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            interrupted()


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="imgrec")
def cli() -> None:
    """Pack image folders into TFRecord shards, inspect them, decode them to float32.

    \b
    Example:
      imgrec pack photos/ shards/
      imgrec inspect shards/
      imgrec decode shards/ -o arrays/ --limit 10
    """
    quiet_beam_logs()  # URLs go through Beam's filesystems, which log noise on import


cli.add_command(pack)
cli.add_command(convert)


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw a contact sheet of sample images with their labels to this PNG file"
    " (decoded as for training; needs TensorFlow).",
)
@click.option(
    "--preview-count",
    type=click.IntRange(1, 400),
    default=36,
    show_default=True,
    help="How many images the contact sheet shows, drawn evenly across classes.",
)
@json_option
@errors_to_click
def inspect(
    paths: tuple[str, ...], preview: Path | None, preview_count: int, as_json: bool
) -> None:
    """Summarise shards: records, labels, formats, shapes and sizes.

    PATHS are dataset folders (answered from manifest.json), shard files or glob patterns
    (read record by record, CRCs checked), including shards written by other tools; - reads
    paths from stdin, one per line.

    \b
    Example:
      imgrec inspect shards/
      imgrec inspect shards/ --preview grid.png
      imgrec inspect 'other/train-*' --json
    """
    from ..checking.summary import summarize

    given = expand(paths)
    summary = summarize(given).to_dict()
    if preview is not None:
        from ..reading.preview import contact_sheet

        summary["preview"] = contact_sheet(given, preview, preview_count)
    emit_json(summary) if as_json else print_summary(summary)
    if summary["problems"]:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per record here, at the record's filename.",
)
@click.option(
    "--to",
    "to",
    type=click.Choice(["npy", "png"]),
    default="npy",
    show_default=True,
    help="npy: the float tensor; png: the image back as PNG.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Float type of the decoded tensors.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where uint8/uint16 -> float conversion runs.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Decode at most N records.")
@click.option("--split", default=None, help="Only this split of a dataset packed with --split.")
@click.option("--stats", is_flag=True, help="Print per-channel mean, std, min and max.")
@click.option(
    "--channels",
    type=click.Choice(["1", "3", "4"]),
    default=None,
    help="Convert every image to this many channels (gray to RGB, RGB to gray by luma,"
    " alpha dropped or added opaque) [default: as stored].",
)
@json_option
@quiet_option
@errors_to_click
def decode(
    paths: tuple[str, ...], out: Path | None, to: str, dtype: str, device: str,
    limit: int | None, split: str | None, stats: bool, channels: str | None, as_json: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Decode shards back to float tensors in [0, 1].

    Raw records go through tf.io.decode_raw, encoded ones through TensorFlow's image
    decoders, then tf.image.convert_image_dtype: uint8 / 255, uint16 / 65535.

    \b
    Example:
      imgrec decode shards/ -o arrays/
      imgrec decode shards/ --stats --limit 100
    """
    if out is None and not stats:
        raise click.UsageError("give -o OUT to write files, or --stats, or both")
    from ..reading.to_files import decode as run_decode

    with progress_bars(quiet) as progress:
        result = run_decode(expand(paths), out, to=to, dtype=dtype, device=device, limit=limit,
                            split=split, stats=stats, progress=progress,
                            channels=int(channels) if channels else None).to_dict()  # fmt: skip
    for problem in result["problems"]:
        click.echo(f"problem: {problem} (left out)", err=True)
    if as_json:
        emit_json(result)
    else:
        _print_decode(result, out, to, dtype)
    if result["problems"]:
        sys.exit(1)


def _print_decode(result: dict[str, Any], out: Path | None, to: str, dtype: str) -> None:
    click.echo(f"Decoded {result['records']} records as {dtype} on {result['device']}")
    if out is not None:
        click.echo(f"Wrote {result['written']} .{to} files under {out}")
    for channels, s in (result.get("stats") or {}).items():
        click.echo(f"{channels}-channel images ({s['images']}):")
        for key in ("mean", "std", "min", "max"):
            click.echo(f"  {key:<5} " + " ".join(f"{v:.6f}" for v in s[key]))


@cli.command(context_settings=CONTEXT)
@click.argument("shards", nargs=-1, required=True)
@json_option
@errors_to_click
def index(shards: tuple[str, ...], as_json: bool) -> None:
    """Write an index file (SHARD.idx) beside each shard.

    SHARDS are dataset folders, shard files or glob patterns. Each index has one line
    per record, "<offset> <size>": the byte offset of the record's length field and the
    size of the whole framed record, the format NVIDIA DALI and the tfrecord package
    read. Both CRCs of every record are checked; a damaged shard is an error and its
    existing index is left alone. pack writes these already: this is for shards from
    other tools, or an index that was lost.

    \b
    Example:
      imgrec index shards/
      imgrec index 'other/train-*' --json
    """
    from ..format.framing import read_index, write_index
    from ..reading.paths import resolve

    done = []
    for shard in resolve(expand(shards)):
        path = write_index(shard)
        done.append({"shard": str(shard), "index": str(path), "records": len(read_index(path))})
    if as_json:
        emit_json({"indexes": done})
        return
    for d in done:
        click.echo(f"{d['index']}: {d['records']} records")


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--against",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Also re-read this source folder: every record must match its source file.",
)
@click.option(
    "--decode",
    "full_decode",
    is_flag=True,
    help="Also decode every encoded image in full: finds image data damaged past a sound"
    " header (a cut-off JPEG) before training does. Costs a decode per image.",
)
@json_option
@quiet_option
@errors_to_click
def verify(
    paths: tuple[str, ...], against: Path | None, full_decode: bool, as_json: bool, quiet: bool
) -> None:
    """Check that shards are intact; exit 1 naming every problem.

    Checks both CRCs of every record, that each record parses and follows the schema (raw
    lengths equal shape x dtype; encoded headers match the declared format and size), that
    index files match, and, with a manifest, each shard's size, record count and sha256.
    Each problem names the shard, record and byte offset.

    \b
    Example:
      imgrec verify shards/
      imgrec verify shards/ --against photos/
      imgrec verify shards/ --decode
    """
    from ..checking.integrity import verify as run_verify

    with progress_bars(quiet) as progress:
        report = run_verify(expand(paths), against, progress, decode=full_decode)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"{report.records} records in {report.shards} shard(s)")
        if report.checked_against:
            click.echo(f"{report.matched} records match their source in {report.checked_against}")
        for p in report.problems:
            click.echo(f"problem: {p}")
        for line in report.changed:
            click.echo(f"changed: {line}")
        for rel in report.removed:
            click.echo(f"removed from the source: {rel}")
        for rel in report.added:
            click.echo(f"added to the source since packing: {rel}")
        click.echo("OK" if report.ok else "FAILED")
    if not report.ok:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("out")
@json_option
@errors_to_click
def tfds(out: str, as_json: bool) -> None:
    """Write TFDS metadata into a dataset, for tfds.builder_from_directory.

    Writes dataset_info.json, features.json and the class names
    (image.class.label.labels.txt) beside OUT's shards, from its manifest; no shard is
    read or changed. tensorflow-datasets 4.6.0 or later then loads OUT: its splits (a
    dataset without --split is "train"), slices like "train[:10%]", as_supervised
    (image, label) and the label names. pack writes these files itself: this adds them to
    a dataset packed without them.

    \b
    Example:
      imgrec tfds shards/
      python -c "import tensorflow_datasets as tfds; print(tfds.builder_from_directory('shards'))"
    """
    from ..core.storage import Folder, join, location
    from ..format.manifest import read_manifest
    from ..packing.tfds import write_metadata

    where = location(out)
    written = [str(join(where, name)) for name in write_metadata(Folder(where), read_manifest(out))]
    if as_json:
        emit_json({"out": str(where), "written": written})
        return
    for path in written:
        click.echo(f"Wrote {path}")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a batch scheduler's stop) cleans up like Ctrl-C


def main() -> None:
    # This process is the application: it owns signal handling and warning filters. Pillow's
    # warnings about odd files would only be noise here; what matters is in the manifest.
    signal.signal(signal.SIGTERM, _terminate)
    warnings.filterwarnings("ignore", module=r"PIL\.")
    try:
        cli(prog_name="imgrec")
    except BrokenPipeError:  # on the way out (the last flush)
        output_closed()
    finally:
        _exiting()


def _exiting() -> None:
    """The command has ended and said how. A Ctrl-C or SIGTERM while the interpreter exits
    can stop nothing, but would end the process silently with 130 or 143 instead of its
    status (Python puts back the default handlers as it exits): both are ignored now,
    unless a thread is left that the exit waits for, which Ctrl-C must be able to end."""
    if all(t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
