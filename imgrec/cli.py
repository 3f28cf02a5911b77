"""The ``imgrec`` command: a thin Click layer over the library.

Parses options, calls one library function, renders text or JSON. TensorFlow is imported
only inside ``decode``, so ``imgrec --help``, ``pack`` and ``inspect`` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import ImgrecError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130  # as shells report a command stopped by Ctrl-C (128 + SIGINT)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Size(click.ParamType):  # type: ignore[type-arg]  # generic only in newer Click
    """WxH, e.g. 224x224, as (width, height)."""

    name = "WxH"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        w, _, h = str(value).lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            self.fail(f"{value!r} is not WxH with positive whole numbers, e.g. 224x224", param, ctx)
        return int(w), int(h)


SIZE = Size()


def split_option(value: str | None) -> tuple[tuple[str, float], ...] | None:
    from .packing import parse_split

    try:
        return parse_split(value) if value else None
    except ImgrecError as e:
        raise click.BadParameter(str(e)) from None


def expand(paths: tuple[str, ...]) -> list[str]:
    """PATH arguments, with ``-`` standing for paths read from stdin, one per line."""
    out: list[str] = []
    for p in paths:
        if p == "-":
            out.extend(line.rstrip("\n") for line in sys.stdin if line.strip())
        else:
            out.append(p)
    if not out:
        raise click.UsageError("no paths given (stdin was empty)")
    return out


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        f
    )


def quiet_option(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars.")(f)


def errors_to_click(f: F) -> F:
    """Library errors become ``Error: ...`` on stderr and exit status 1, never a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ImgrecError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            # Temporary files are already gone (context managers); nothing half-written
            # carries a final name, and no manifest was written.
            click.echo(
                "Interrupted: stopped cleanly; no manifest was written. `imgrec pack"
                " --resume` continues an interrupted pack.",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@contextmanager
def progress_bars(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A library progress callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}
    disable = quiet or not sys.stderr.isatty()

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            in_bytes = stage == "verify"  # verify counts bytes checked, the others images
            bar = bars[stage] = tqdm(
                total=total or None,
                desc=stage,
                unit="B" if in_bytes else "img",
                unit_scale=in_bytes,
                unit_divisor=1024,
                file=sys.stderr,
                disable=disable,
                leave=False,
            )
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="imgrec")
def cli() -> None:
    """Pack image folders into TFRecord shards, inspect them, decode them to float32.

    \b
    Example:
      imgrec pack photos/ shards/
      imgrec inspect shards/
      imgrec decode shards/ -o arrays/ --limit 10
    """


@cli.command(context_settings=CONTEXT)
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["encoded", "png", "jpeg", "raw"]),
    default="encoded",
    show_default=True,
    help="encoded: keep JPEG/PNG bytes as they are, others become PNG; png/jpeg: re-encode"
    " everything; raw: decoded pixels (uint8, or uint16 for 16-bit sources).",
)
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="JPEG quality for --format jpeg.",
)
@click.option(
    "--channels",
    type=click.Choice(["auto", "1", "3", "4"]),
    default="auto",
    show_default=True,
    help="auto keeps gray as 1, colour as 3, and alpha (4) only where it is used.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="Number of shards [default: as many as needed for about 128 MiB each].",
)
@click.option("--name", default="data", show_default=True, help="Shard file name prefix.")
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with one class name per line, fixing the label order.",
)
@click.option(
    "--from-list",
    "from_list",
    default=None,
    metavar="FILE",
    help="Pack the files this list names (paths under SRC, one per line; or CSV path,label"
    " for labels that are not folder names) instead of walking SRC. - reads stdin.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed.")
@click.option(
    "--split",
    default=None,
    callback=lambda ctx, param, value: split_option(value),
    metavar="NAME=RATIO,...",
    help="Split into named sets, e.g. train=0.8,val=0.1,test=0.1: stratified by class,"
    " stable per file; shards are named after each split.",
)
@click.option("--no-shuffle", is_flag=True, help="Keep the sorted walk order in the shards.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes loading images [default: all cores]. Output does not depend on it.",
)
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="skip: record unreadable images and go on; fail: stop.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Skip images with more pixels than this [default: 89478485, Pillow's].",
)
@click.option(
    "--resize",
    type=SIZE,
    default=None,
    help="Resize every image to WxH (e.g. 224x224), per --resize-mode.",
)
@click.option(
    "--resize-mode",
    type=click.Choice(["stretch", "fit", "fill", "pad"]),
    default="stretch",
    show_default=True,
    help="stretch: exactly WxH; fit: inside WxH, aspect kept; fill: cover WxH and centre-crop;"
    " pad: fit, then pad with zeros to WxH.",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=1),
    default=None,
    help="Shrink images whose longer side exceeds N, keeping the aspect (never enlarges).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted pack into OUT (same SRC and options): finished shards are"
    " kept, and the result is identical to an uninterrupted run.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (images per class, skipped, estimated size, shards); write nothing.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier pack in a non-empty OUT.")
@click.option(
    "--runner",
    type=click.Choice(
        "local beam DirectRunner DataflowRunner FlinkRunner SparkRunner PortableRunner".split()
    ),
    default="local",
    show_default=True,
    help="local: processes on this machine (--workers). beam: an Apache Beam pipeline on Beam's"
    " default runner (or --beam-option runner=...); or name the Beam runner. The output is"
    ' byte-identical. Beam needs pip install "imgrec[beam]".',
)
@click.option(
    "--beam-option",
    "beam_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Beam pipeline option (or a flag KEY), passed on as --KEY=VALUE; repeatable, e.g."
    " project=my-project, region=europe-west1, direct_num_workers=2.",
)
@json_option
@quiet_option
@errors_to_click
def pack(
    src: str, out: str, resume: bool, dry_run: bool, as_json: bool, quiet: bool, **options: Any
) -> None:
    """Pack the images under SRC into TFRecord shards in OUT.

    Each first-level folder of SRC is a class (labels 0..K-1 in sorted name order); files
    directly in SRC get label -1. Files are recognised as images by content, not extension.
    OUT gets NAME-00000-of-0000N.tfrecord shards, an .idx index beside each, and
    manifest.json, written last. With a Beam runner, SRC and OUT may be URLs (gs://, s3://)
    read and written through Beam's filesystems.

    \b
    Example:
      imgrec pack photos/ shards/
      imgrec pack photos/ shards/ --format raw --shards 8 --overwrite
      imgrec pack photos/ shards/ --split train=0.9,val=0.1 --dry-run
    """
    from . import storage
    from .images import DEFAULT_MAX_PIXELS
    from .packing import PackOptions
    from .packing import pack as run_pack

    runner, beam_options = options.pop("runner"), options.pop("beam_options")
    if runner == "local" and beam_options:
        raise click.UsageError("--beam-option is for Beam runs: add --runner beam (or a runner)")
    if runner != "local" and options["workers"] is not None:
        raise click.UsageError(
            "--workers is for --runner local; on Beam the runner sets the parallelism"
            " (e.g. --beam-option direct_num_workers=2)"
        )
    options["format"] = options.pop("fmt")
    options["shuffle"] = not options.pop("no_shuffle")
    options["workers"] = options["workers"] or os.cpu_count() or 1
    options["max_pixels"] = options["max_pixels"] or DEFAULT_MAX_PIXELS
    if options["labels_file"] is not None:
        options["labels_file"] = str(options["labels_file"])
    opts = PackOptions(**options)
    if dry_run:
        from .packing import plan

        if runner != "local" and (storage.is_url(src) or storage.is_url(out)):
            from .beam import pipeline_flags  # no pipeline to carry the options here

            storage.configure(pipeline_flags(runner, beam_options))

        with progress_bars(quiet) as progress:
            planned = plan(src, out, opts, progress)
        emit_json(planned) if as_json else _print_plan(planned)
        return
    start = time.perf_counter()
    with progress_bars(quiet) as progress:
        if runner == "local":
            manifest = run_pack(src, out, opts, progress, resume=resume)
        else:  # apache_beam is imported only here
            from .beam import pack as beam_pack

            manifest = beam_pack(src, out, opts, progress, resume, runner, beam_options)
    seconds = time.perf_counter() - start
    where = storage.join(storage.location(out), "manifest.json")
    if as_json:
        emit_json({"out": str(storage.location(out)), "manifest": str(where),
                   "seconds": round(seconds, 3), **manifest})  # fmt: skip
        return
    stats = manifest["stats"]
    sizes = [s["bytes"] for s in manifest["shards"]]
    click.echo(f"Packed {manifest['records']} images into {len(sizes)} shard(s),"
               f" {human_bytes(sum(sizes))}, in {seconds:.1f} s"
               f" ({manifest['records'] / max(seconds, 1e-9):.0f} images/s)")  # fmt: skip
    if len(sizes) > 1:
        click.echo(f"  shards of {human_bytes(min(sizes))} to {human_bytes(max(sizes))}")
    counts = stats["labels"]
    for label in [*manifest["labels"], *[k for k in counts if k not in manifest["labels"]]]:
        click.echo(f"  {label}: {counts.get(label, 0)}")
    for name, s in manifest.get("splits", {}).items():
        click.echo(f"  split {name}: {s['records']} images")
    click.echo(
        f"Ignored {manifest['ignored']} non-image file(s); skipped {len(manifest['skipped'])}."
    )
    _print_skipped(manifest["skipped"])
    if manifest["transcoded"]:
        click.echo(f"Transcoded {len(manifest['transcoded'])} image(s) (see the manifest).")
    click.echo(f"Manifest: {where}")


def _print_skipped(skipped: list[dict[str, str]]) -> None:
    for s in skipped[:5]:
        click.echo(f"  skipped {s['path']}: {s['reason']}")
    if len(skipped) > 5:
        click.echo(f"  ... and {len(skipped) - 5} more")


def _print_plan(p: dict[str, Any]) -> None:
    click.echo(f"Dry run: nothing written. {p['images']} images would go to {p['out']}:")
    for label, count in p["labels"].items():
        click.echo(f"  {label}: {count}")
    click.echo(f"Ignored {p['ignored']} non-image file(s); would skip {len(p['skipped'])}.")
    _print_skipped(p["skipped"])
    dense = human_bytes(p["dense_bytes"])
    if p["estimated_bytes"] is not None:
        ratio = p["estimated_bytes"] / p["dense_bytes"] if p["dense_bytes"] else 0
        click.echo(
            f"Estimated size as {p['format']}: {human_bytes(p['estimated_bytes'])}"
            f" ({ratio:.0%} of the {dense} of decoded pixels)"
        )
    for part in p["shards"]:
        click.echo(f"Shards: {part['shards']} x {part['name']} ({part['images']} images)")


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
    from .summary import summarize

    given = expand(paths)
    summary = summarize(given).to_dict()
    if preview is not None:
        from .preview import contact_sheet

        summary["preview"] = contact_sheet(given, preview, preview_count)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"records:   {summary['records']}")
    click.echo(f"shards:    {len(summary['shards'])}, {human_bytes(summary['bytes'])}")
    for key in ("formats", "dtypes", "channels"):
        click.echo(f"{key + ':':<10} " + ", ".join(f"{k} {v}" for k, v in summary[key].items()))
    if summary["height"]:
        h, w = summary["height"], summary["width"]
        click.echo(f"height:    {h['min']}..{h['max']}")
        click.echo(f"width:     {w['min']}..{w['max']}")
    click.echo(f"stored:    {human_bytes(summary['avg_stored_bytes'])} per image on average")
    if summary["stored_to_dense_uint8"] is not None:
        click.echo(
            f"vs dense:  {summary['stored_to_dense_uint8']:.1%} of the decoded uint8 size"
            f" ({human_bytes(summary['dense_uint8_bytes'])})"
        )
    if summary["splits"]:
        click.echo("splits:    " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    click.echo("labels:")
    width = max((len(k) for k in summary["labels"]), default=0)
    for name, count in summary["labels"].items():
        click.echo(f"  {name:<{width}}  {count}")
    if preview is not None:
        p = summary["preview"]
        click.echo(f"preview:   {p['path']} ({p['images']} images, {p['columns']}x{p['rows']})")
    for problem in summary["problems"]:
        click.echo(f"problem: {problem}", err=True)
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
@json_option
@quiet_option
@errors_to_click
def decode(
    paths: tuple[str, ...], out: Path | None, to: str, dtype: str, device: str,
    limit: int | None, split: str | None, stats: bool, as_json: bool, quiet: bool,
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
    from .decoding import run_decode

    with progress_bars(quiet) as progress:
        result = run_decode(expand(paths), out, to=to, dtype=dtype, device=device, limit=limit,
                            split=split, stats=stats, progress=progress)  # fmt: skip
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
    from .manifest import resolve
    from .tfrecord import read_index, write_index

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
@json_option
@quiet_option
@errors_to_click
def verify(paths: tuple[str, ...], against: Path | None, as_json: bool, quiet: bool) -> None:
    """Check that shards are intact; exit 1 naming every problem.

    Checks both CRCs of every record, that each record parses and follows the schema (raw
    lengths equal shape x dtype; encoded headers match the declared format and size), that
    index files match, and, with a manifest, each shard's size, record count and sha256.
    Each problem names the shard, record and byte offset.

    \b
    Example:
      imgrec verify shards/
      imgrec verify shards/ --against photos/
    """
    from .verify import verify as run_verify

    with progress_bars(quiet) as progress:
        report = run_verify(expand(paths), against, progress)
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


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a batch scheduler's stop) cleans up like Ctrl-C


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli(prog_name="imgrec")
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
