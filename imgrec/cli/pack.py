"""``imgrec pack``: its options, and what it prints."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..core.errors import ImgrecError
from .common import (
    CONTEXT,
    SIZE,
    F,
    emit_json,
    errors_to_click,
    interrupted,
    json_option,
    progress_bars,
    quiet_option,
)
from .show import print_packed, print_plan

if TYPE_CHECKING:
    pass


def split_option(value: str | None) -> tuple[tuple[str, float], ...] | None:
    from ..format.options import parse_split

    try:
        return parse_split(value) if value else None
    except ImgrecError as e:
        raise click.BadParameter(str(e)) from None


# The options pack and convert share, in the order --help shows them.
SHARED = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["encoded", "png", "jpeg", "raw"]),
        default="encoded",
        show_default=True,
        help="encoded: keep JPEG/PNG bytes as they are, others become PNG; png/jpeg: re-encode"
        " everything; raw: decoded pixels (uint8, or uint16 for 16-bit sources).",
    ),
    click.option(
        "--quality",
        type=click.IntRange(1, 100),
        default=95,
        show_default=True,
        help="JPEG quality for --format jpeg.",
    ),
    click.option(
        "--channels",
        type=click.Choice(["auto", "1", "3", "4"]),
        default="auto",
        show_default=True,
        help="auto keeps gray as 1, colour as 3, and alpha (4) only where it is used.",
    ),
    click.option(
        "--shards",
        type=click.IntRange(min=1),
        default=None,
        help="Number of shards [default: as many as needed for about 128 MiB each].",
    ),
    click.option("--name", default="data", show_default=True, help="Shard file name prefix."),
    click.option(
        "--labels",
        "labels_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File with one class name per line, fixing the label order.",
    ),
    click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed."),
    click.option(
        "--split",
        default=None,
        callback=lambda ctx, param, value: split_option(value),
        metavar="NAME=RATIO,...",
        help="Split into named sets, e.g. train=0.8,val=0.1,test=0.1; shards are named after"
        " each split. An image's split depends only on its path, the seed and the ratios.",
    ),
    click.option(
        "--split-mode",
        type=click.Choice(["stable", "exact"]),
        default="stable",
        show_default=True,
        help="stable: adding or removing images never moves another between splits; ratios hold"
        " up to chance. exact: each class cut at its ratio to within one image, but added or"
        " removed images move others across the cuts.",
    ),
    click.option("--no-shuffle", is_flag=True, help="Keep the sorted walk order in the shards."),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Processes loading images [default: all cores]. Output does not depend on it.",
    ),
    click.option(
        "--on-error",
        type=click.Choice(["skip", "fail"]),
        default="skip",
        show_default=True,
        help="skip: record unreadable images and go on; fail: stop.",
    ),
    click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=None,
        help="Skip images with more pixels than this [default: 89478485, Pillow's].",
    ),
    click.option(
        "--resize",
        type=SIZE,
        default=None,
        help="Resize every image to WxH (e.g. 224x224), per --resize-mode.",
    ),
    click.option(
        "--resize-mode",
        type=click.Choice(["stretch", "fit", "fill", "pad"]),
        default="stretch",
        show_default=True,
        help="stretch: exactly WxH; fit: inside WxH, aspect kept; fill: cover WxH and centre-crop;"
        " pad: fit, then pad with zeros to WxH.",
    ),
    click.option(
        "--max-side",
        type=click.IntRange(min=1),
        default=None,
        help="Shrink images whose longer side exceeds N, keeping the aspect (never enlarges).",
    ),
    click.option(
        "--color",
        type=click.Choice(["keep", "srgb"]),
        default=None,
        help="keep: pixels as they are, each image's ICC profile recorded; srgb: images with"
        " another profile (Display P3, Adobe RGB, CMYK, ...) converted to sRGB through"
        " LittleCMS, relative colorimetric. Images without one are sRGB. [default: keep]",
    ),
    click.option(
        "--resume",
        is_flag=True,
        help="Continue an interrupted pack into OUT (same SRC and options): finished shards are"
        " kept, and the result is identical to an uninterrupted run.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the plan (images per class, skipped, estimated size, shards); write nothing.",
    ),
    click.option("--overwrite", is_flag=True, help="Replace an earlier pack in a non-empty OUT."),
]
FROM_LIST = click.option(
    "--from-list",
    "from_list",
    default=None,
    metavar="FILE",
    help="Pack the files this list names (paths under SRC, one per line; or CSV path,label"
    " for labels that are not folder names) instead of walking SRC. - reads stdin.",
)
ANNOTATIONS = click.option(
    "--annotations",
    metavar="PATH",
    type=click.Path(exists=True),
    help="Objects to pack with the images: a COCO .json, or a folder of Pascal VOC .xml or"
    " YOLO .txt files (one per image, by the image's path). A metadata.jsonl or metadata.csv"
    " at the top of SRC adds its columns to each image.",
)
MASKS = click.option(
    "--masks",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Semantic masks to pack with the images: a PNG of class indices per image, at the"
    " image's path under DIR with .png (255: ignore), stored under DeepLab's keys.",
)
RUNNER = click.option(
    "--runner",
    type=click.Choice(
        ["local", "beam", "spark"]
        + "DirectRunner DataflowRunner FlinkRunner SparkRunner PortableRunner".split()
    ),
    default="local",
    show_default=True,
    help="local: processes on this machine (--workers). beam: an Apache Beam pipeline on Beam's"
    " default runner (or --beam-option runner=...); or name the Beam runner. spark: Apache"
    " Spark tasks (--spark-master, --spark-conf). The output is byte-identical. Beam needs"
    ' pip install "imgrec[beam]", Spark "imgrec[spark]".',
)
SPARK_MASTER = click.option(
    "--spark-master",
    metavar="URL",
    default=None,
    help="--runner spark: the Spark master (spark://HOST:7077, yarn, local[4], ...); by"
    " default what spark-defaults.conf (SPARK_HOME, SPARK_CONF_DIR) says, else local[*].",
)
SPARK_CONF = click.option(
    "--spark-conf",
    "spark_conf",
    multiple=True,
    metavar="KEY=VALUE",
    help="--runner spark: a Spark setting, repeatable, e.g. spark.executor.memory=4g.",
)
BEAM_OPTION = click.option(
    "--beam-option",
    "beam_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Beam pipeline option (or a flag KEY), passed on as --KEY=VALUE; repeatable, e.g."
    " project=my-project, region=europe-west1, direct_num_workers=2.",
)
PACK_OPTIONS = [*SHARED[:6], FROM_LIST, ANNOTATIONS, MASKS, *SHARED[6:], RUNNER, BEAM_OPTION,
                SPARK_MASTER, SPARK_CONF]  # fmt: skip


def with_options(options: list[Any]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


@click.command(context_settings=CONTEXT)
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path())
@with_options(PACK_OPTIONS)
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
    manifest.json, written last. With a Beam runner or Spark, SRC and OUT may be URLs
    (gs://, s3://), read and written through Beam's filesystems.

    \b
    Example:
      imgrec pack photos/ shards/
      imgrec pack photos/ shards/ --format raw --shards 8 --overwrite
      imgrec pack photos/ shards/ --split train=0.9,val=0.1 --dry-run
    """
    if options["runner"] == "local" and options["beam_options"]:
        raise click.UsageError("--beam-option is for Beam runs: add --runner beam (or a runner)")
    if options["runner"] != "local" and options["workers"] is not None:
        raise click.UsageError(
            "--workers is for --runner local; on Beam or Spark the engine sets the parallelism"
            " (e.g. --beam-option direct_num_workers=2, --spark-master local[2])"
        )
    if options["runner"] != "spark" and (options["spark_master"] or options["spark_conf"]):
        raise click.UsageError("--spark-master and --spark-conf are for --runner spark")
    options["beam_options"] = tuple(options["beam_options"])
    options["spark_conf"] = tuple(options["spark_conf"])
    _run(src, out, options, resume=resume, dry_run=dry_run, as_json=as_json, quiet=quiet)


def _run(
    src: str, out: str, options: dict[str, Any], *, resume: bool, dry_run: bool, as_json: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Make PackOptions from the shared options, run (or plan) the pack, print the result."""
    from ..core import storage
    from ..format.options import PackOptions
    from ..packing.driver import InterruptedComplete, plan
    from ..packing.driver import pack as run_pack

    options["format"] = options.pop("fmt")
    options["shuffle"] = not options.pop("no_shuffle")
    if options["labels_file"] is not None:
        options["labels_file"] = str(options["labels_file"])
    opts = PackOptions(**{k: v for k, v in options.items() if v is not None})  # None: the default
    if dry_run:
        with progress_bars(quiet) as progress:
            planned = plan(src, out, opts, progress).to_dict()
        emit_json(planned) if as_json else print_plan(planned)
        return
    start = time.perf_counter()
    packed = None
    try:
        with progress_bars(quiet) as progress:
            packed = run_pack(src, out, opts, progress, resume=resume)
        print_packed(packed, out, time.perf_counter() - start, as_json)
    except KeyboardInterrupt as e:
        if packed is None and not isinstance(e, InterruptedComplete):
            raise  # stopped before its manifest: errors_to_click says so
        where = storage.join(storage.location(out), "manifest.json")
        interrupted(f"Interrupted after the pack had finished: {where} is written and the"
                    " dataset is complete.")  # fmt: skip


@click.command(context_settings=CONTEXT)
@click.argument("src", type=click.Path())
@click.argument("out", type=click.Path())
@click.option(
    "--from",
    "source_format",
    type=click.Choice(["recordio", "lmdb", "tfrecord"]),
    default=None,
    help="What SRC is [default: recognised from its files: a .rec, a folder with data.mdb,"
    " TFRecord files].",
)
@click.option(
    "--lst",
    "lst_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="RecordIO: the im2rec .lst file (index, labels, path): records' file names, and"
    " class names from their folders.",
)
@click.option(
    "--keys",
    "source_keys",
    default=None,
    metavar="ROLE=KEY,...",
    callback=lambda ctx, param, value: keys_option(value),
    help="TFRecord: the feature keys to read, e.g. image=img/bytes,label=img/cls,"
    "filename=img/name,text=img/cls_name [default: the inception/slim or TFDS keys].",
)
@with_options(SHARED)
@json_option
@quiet_option
@errors_to_click
def convert(
    src: str, out: str, resume: bool, dry_run: bool, as_json: bool, quiet: bool, **options: Any
) -> None:
    """Convert another tool's dataset (MXNet RecordIO, Caffe LMDB, TFRecords) into shards.

    SRC is a .rec file (its .idx beside it, or none), an LMDB folder (data.mdb) of Caffe
    Datum records, or TFRecord files (a file, a folder or a glob). Every option works as in
    pack; OUT gets the same shards, index files and manifest. Class names come from
    --labels (one per line, in class-number order), or from what the records carry.

    \b
    Example:
      imgrec convert train.rec shards/ --lst train.lst
      imgrec convert caffe_lmdb/ shards/ --labels classes.txt --format png
      imgrec convert 'old/train-*' shards/ --split train=0.9,val=0.1
    """
    from ..core.storage import location
    from ..packing.converters import detect

    options["source_format"] = options["source_format"] or detect(location(src))
    options["lst_file"] = str(options["lst_file"]) if options["lst_file"] else None
    _run(src, out, options, resume=resume, dry_run=dry_run, as_json=as_json, quiet=quiet)


def keys_option(value: str | None) -> tuple[tuple[str, str], ...] | None:
    if not value:
        return None
    pairs = []
    for part in value.split(","):
        role, eq, key = part.strip().partition("=")
        if not eq or role not in ("image", "label", "text", "filename") or not key:
            raise click.BadParameter(
                f"want ROLE=KEY pairs (roles: image, label, text, filename); got {part!r}"
            )
        pairs.append((role, key))
    if "image" not in dict(pairs):  # a usage error, as the others here (exit 2)
        raise click.BadParameter("name the image's key too (image=KEY)")
    return tuple(pairs)
