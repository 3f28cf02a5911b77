"""What a pack is asked to do: ``PackOptions``, checked once, before anything is read."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..core import storage
from ..core.errors import InputError
from ..images import loading, pixels

SHARD_SIZE = 128 * 2**20
FORMATS = ("encoded", "png", "jpeg", "raw")
SPLIT_MODES = ("stable", "exact")
SOURCE_FORMATS = ("folder", "recordio", "lmdb", "tfrecord")
RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
# Options that choose how the work is done, never what is written: not in the manifest.
NOT_RECORDED = ("workers", "overwrite", "runner", "beam_options", "spark_master", "spark_conf")


@dataclass(frozen=True)
class PackOptions:
    format: str = "encoded"
    quality: int = 95
    channels: str = "auto"
    max_pixels: int = loading.DEFAULT_MAX_PIXELS
    resize: tuple[int, int] | None = None  # (height, width), as imgrec.dataset and TF take it
    resize_mode: str = "stretch"
    max_side: int | None = None
    color: str = "keep"  # keep | srgb (images.colour)
    shards: int | None = None
    shard_size: int = SHARD_SIZE
    name: str = "data"
    seed: int = 0
    shuffle: bool = True
    on_error: str = "skip"  # skip | fail
    labels_file: str | None = None
    from_list: str | None = None  # a list of files (and labels) instead of walking SRC
    split: tuple[tuple[str, float], ...] | None = None  # ((name, ratio), ...)
    split_mode: str = "stable"  # stable | exact (see sharding.assign_splits)
    # imgrec convert: what SRC is (folder: a folder of images, as pack reads it)
    source_format: str = "folder"  # folder | recordio | lmdb | tfrecord
    source_keys: tuple[tuple[str, str], ...] | None = None  # tfrecord: (role, feature key)
    lst_file: str | None = None  # recordio: an im2rec .lst naming the records' files
    # A COCO .json, or a folder of Pascal VOC .xml or YOLO .txt files (packing/annotations/)
    annotations: str | None = None
    masks: str | None = None  # a folder of semantic-mask PNGs, one per image (annotations/)
    workers: int | None = None  # processes of the local runner; None: one per core
    overwrite: bool = False
    # "local" (processes on this machine), "beam" (Beam's default runner) or a Beam runner.
    runner: str = "local"
    beam_options: tuple[str, ...] = ()  # KEY=VALUE pipeline options for Beam runs
    # --runner spark: the master URL (None: what Spark's configuration says), KEY=VALUE settings
    spark_master: str | None = None
    spark_conf: tuple[str, ...] = ()

    def image_options(self) -> loading.ImageOptions:
        return loading.ImageOptions(
            self.format,
            self.quality,
            self.channels,
            self.max_pixels,
            self.resize,
            self.resize_mode,
            self.max_side,
            upright=self.annotations is not None or self.masks is not None,
            color=self.color,
        )

    @property
    def worker_count(self) -> int:
        """The local runner's processes: ``workers``, or one per core."""
        return self.workers or default_workers()

    @property
    def on_beam(self) -> bool:
        return self.runner not in ("local", "spark")

    @property
    def distributed(self) -> bool:
        """On an engine (Beam, Spark): SRC and OUT may be URLs."""
        return self.runner != "local"

    def recorded(self) -> dict[str, Any]:
        """The options that shape the output, as saved in the manifest."""
        d = asdict(self)
        for name in NOT_RECORDED:
            del d[name]
        if self.resize is not None:  # the manifest's "resize" is [width, height], as WxH
            d["resize"] = [self.resize[1], self.resize[0]]
        if self.source_format == "folder":  # what only convert uses, left out for a folder
            for name in ("source_format", "source_keys", "lst_file"):
                del d[name]
        for name in ("annotations", "masks"):  # as manifests written before them, when unset
            if d[name] is None:
                del d[name]
        if self.color == "keep":
            del d["color"]
        return d

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> PackOptions:
        """The options a manifest recorded (JSON lists back into tuples; unknown keys, from
        another imgrec version, left out)."""
        known = {f.name for f in fields(cls)} - set(NOT_RECORDED)
        d = {k: v for k, v in recorded.items() if k in known}
        if d.get("resize") is not None:  # recorded as [width, height]
            width, height = d["resize"]
            d["resize"] = (height, width)
        if d.get("split") is not None:
            d["split"] = tuple((name, ratio) for name, ratio in d["split"])
            d.setdefault("split_mode", "exact")  # the only mode before split_mode existed
        if d.get("source_keys") is not None:
            d["source_keys"] = tuple((role, key) for role, key in d["source_keys"])
        return cls(**d)


def default_workers() -> int:
    """The local runner's processes when none are asked for: one per core."""
    return os.cpu_count() or 1


def parse_split(text: str) -> tuple[tuple[str, float], ...]:
    """``"train=0.8,val=0.1,test=0.1"`` -> (("train", 0.8), ("val", 0.1), ("test", 0.1))."""
    pairs = []
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        try:
            ratio = float(value)
        except ValueError:
            ratio = -1.0
        if not eq or not name or ratio < 0:
            raise InputError(f"--split wants name=ratio pairs like train=0.8,val=0.2; got {text!r}")
        pairs.append((name, ratio))
    return tuple(pairs)


def check(opts: PackOptions, src: str | Path, out: str | Path) -> None:
    """Refuse options (and SRC/OUT kinds) that cannot work: the same refusals for ``plan``
    (a dry run) and ``pack``."""
    if opts.format not in FORMATS:
        raise InputError(f"unknown format {opts.format!r}; use one of {', '.join(FORMATS)}")
    if opts.channels not in ("auto", "1", "3", "4"):
        raise InputError(f"unknown channels {opts.channels!r}; use auto, 1, 3 or 4")
    if opts.on_error not in ("skip", "fail"):
        raise InputError(f"unknown --on-error {opts.on_error!r}; use skip or fail")
    if not 1 <= opts.quality <= 100:
        raise InputError("--quality must be from 1 to 100")
    if opts.color not in ("keep", "srgb"):
        raise InputError(f"unknown --color {opts.color!r}; use keep or srgb")
    if opts.resize_mode not in pixels.RESIZE_MODES:
        raise InputError(f"unknown resize mode {opts.resize_mode!r}; use {pixels.RESIZE_MODES}")
    if opts.resize is not None and opts.max_side is not None:
        raise InputError("give --resize or --max-side, not both")
    if opts.resize is not None and min(opts.resize) < 1 or (opts.max_side or 1) < 1:
        raise InputError("resize sizes must be at least 1 pixel")
    if opts.workers is not None and opts.workers < 1:
        raise InputError("--workers must be at least 1")
    names = [opts.name] if not opts.split else [name for name, _ in opts.split]
    for name in names:
        # "manifest.json" is the manifest's own name.
        if not name or "/" in name or name.startswith(".") or name == "manifest.json":
            raise InputError(f"{name!r} must be a plain file name prefix")
    if opts.source_format not in SOURCE_FORMATS:
        raise InputError(
            f"unknown source format {opts.source_format!r}; use {', '.join(SOURCE_FORMATS)}"
        )
    if opts.source_format != "folder" and opts.distributed:
        raise InputError("imgrec convert runs on this machine: drop --runner")
    if opts.source_format != "folder" and opts.from_list:
        raise InputError("--from-list picks files of a folder; convert reads a dataset file")
    if opts.split_mode not in SPLIT_MODES:
        raise InputError(f"unknown split mode {opts.split_mode!r}; use stable or exact")
    if opts.split:
        if len(set(names)) != len(names):
            raise InputError("--split names must differ")
        total = sum(r for _, r in opts.split)
        if abs(total - 1) > 1e-6:
            raise InputError(f"--split ratios must add up to 1, not {total:g}")
    if opts.runner not in ("local", "beam", "spark", *RUNNERS):
        raise InputError(
            f"unknown runner {opts.runner!r}; use local, beam, spark or one of {', '.join(RUNNERS)}"
        )
    if not opts.on_beam and opts.beam_options:
        raise InputError("Beam options are for Beam runs: add --runner beam (or a runner)")
    if opts.runner != "spark" and (opts.spark_master or opts.spark_conf):
        raise InputError("--spark-master and --spark-conf are for --runner spark")
    if not opts.distributed:
        for what, where in (("SRC", src), ("OUT", out)):
            if storage.is_url(where):
                raise InputError(
                    f"{what} is a URL: URLs are read and written by Beam and Spark runs; add"
                    " --runner beam (or spark), or use a local path",
                    str(where),
                )
