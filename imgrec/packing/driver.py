"""The one pack driver: check OUT -> scan -> plan -> journal -> executor -> manifest ->
clean-up, the same for every executor; and ``plan``, the dry run that stops before writing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core import storage
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from ..core.storage import Folder
from ..format.layout import MANIFEST, PIECES
from ..format.manifest import Manifest, Note, SplitInfo
from ..format.manifest import write as write_manifest
from ..format.options import PackOptions, check
from ..format.stats import Stats, merge_stats
from .annotations import label_map
from .converters import detect
from .encode import ShardResult, Skipped, load_or_skip
from .executors import Executor
from .executors.local import LocalExecutor
from .executors.pool import WorkerDied
from .journal import (
    Journal,
    check_out,
    discard,
    prepare_out,
    remove_orphan_indexes,
    remove_stale,
    resumable,
)
from .lock import cannot_write, locked
from .scan import Scan, scan_source
from .sharding import ShardSpec, plan_shards
from .tfds import write_metadata


class InterruptedComplete(KeyboardInterrupt):
    """Ctrl-C (or the CLI's SIGTERM) once the manifest was written: the dataset is complete
    (``manifest``, in OUT); only what comes after it (removing the journal, the working
    files, the lock) was cut short, and the journal is removed all the same."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__("interrupted once the dataset was complete")
        self.manifest = manifest


def executor_for(opts: PackOptions) -> Executor:
    if not opts.distributed:
        return LocalExecutor(opts.worker_count)
    if opts.runner == "spark":
        from .executors.spark import SparkExecutor  # PySpark only for Spark runs

        return SparkExecutor(opts.spark_master, opts.spark_conf)
    from .executors.beam import BeamExecutor  # Beam's modules only for Beam runs

    return BeamExecutor(opts.runner, opts.beam_options)


def pack(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> Manifest:
    """Pack the images under ``src`` into shards in ``out``; returns the manifest written.

    ``resume`` continues an interrupted run into the same ``out``: shards it finished are
    kept, the rest are written, and the result is byte-identical to an uninterrupted run.
    A KeyboardInterrupt once the manifest is written is ``InterruptedComplete``: the
    dataset is complete.
    """
    opts = options or PackOptions()
    check(opts, src, out)
    src_at = storage.location(src)
    executor = executor_for(opts)
    executor.check()
    return pack_with(executor, src_at, out, opts, progress, resume)


def pack_with(
    executor: Executor,
    src_at: storage.Location,
    out: str | Path,
    opts: PackOptions,
    progress: Progress | None = None,
    resume: bool = False,
) -> Manifest:
    """``pack`` by a given executor (checked already) of what it calls SRC, ``src_at``: the
    one driver for a folder and for images that are elsewhere (``imgrec.spark.write``)."""
    note = progress or no_progress
    folder = Folder(storage.location(out))
    writing: list[Manifest] = []  # the manifest, from just before it is written
    try:
        with locked(folder):
            return _pack(src_at, folder, opts, executor, note, resume, writing)
    except KeyboardInterrupt:
        if not writing or folder.size(MANIFEST) is None:
            raise  # stopped before the dataset was complete
        # Complete: a journal left beside the manifest would mark it interrupted.
        with contextlib.suppress(OSError, KeyboardInterrupt):
            discard(folder)
        raise InterruptedComplete(writing[0]) from None


def convert(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> Manifest:
    """Convert another tool's dataset (MXNet RecordIO, Caffe LMDB, TFRecord files) into an
    imgrec dataset in ``out``, as ``pack`` packs a folder: the same options, shards, index
    files, manifest, splits, skips and resume. ``options.source_format`` names the kind;
    left at "folder", it is recognised from SRC's files."""
    opts = options or PackOptions()
    if opts.source_format == "folder":
        opts = replace(opts, source_format=detect(storage.location(src)))
    return pack(src, out, opts, progress, resume)


def _pack(
    src: storage.Location,
    folder: Folder,
    opts: PackOptions,
    executor: Executor,
    note: Progress,
    resume: bool,
    writing: list[Manifest],
) -> Manifest:
    """``pack``, with OUT's lock held."""
    resume = check_out(src, folder, opts.overwrite, resume)
    try:
        return _pack_scanned(src, folder, opts, executor, note, resume, writing)
    except WorkerDied as e:
        if resumable(folder):
            raise WorkerDied(f"{e}; finished shards are kept: run again with --resume") from None
        raise WorkerDied(f"{e}; no shard was finished: run again") from None
    finally:
        executor.close()
        with contextlib.suppress(OSError):
            folder.delete_tree(PIECES)  # the local executor's, once its shards are written


def _pack_scanned(
    src: storage.Location,
    folder: Folder,
    opts: PackOptions,
    executor: Executor,
    note: Progress,
    resume: bool,
    writing: list[Manifest],
) -> Manifest:
    scanned = executor.scan_source(src, folder, opts, note)  # the local one packs as it reads
    specs = plan_shards(scanned.candidates, scanned.estimate, opts, scanned.store)
    journal: Journal | None = None
    try:
        prepare_out(folder, resuming=resume)
        annotations = scanned.walk.annotations
        journal = Journal.open(folder, opts, scanned.walk.labels, scanned.files, resume,
                               annotations.digest if annotations is not None else None)  # fmt: skip
        done: dict[str, ShardResult] = {}
        if resume:
            done = {s.name: r for s in specs if (r := journal.finished(s)) is not None}
        todo = [s for s in specs if s.name not in done]
        results = executor.write(todo, folder, opts.image_options(), journal, note)
        for spec, result in zip(todo, results, strict=True):
            if opts.on_error == "fail" and result.skipped:
                first = result.skipped[0]
                raise InputError(
                    f"{first.reason} (stopped by --on-error fail)",
                    str(storage.join(src, first.path)),
                )
            done[spec.name] = result
        manifest = _manifest(src, opts, scanned, specs, done)
        remove_stale(folder, {n for s in manifest.shards for n in (s.file, s.index)})
        with contextlib.suppress(InputError):  # a dataset TFDS cannot describe: none
            write_metadata(folder, manifest)  # `imgrec tfds OUT` says why
        label_map.write(folder, manifest)
        writing.append(manifest)
        write_manifest(folder, manifest)
        journal.close()
    except OSError as e:
        _clean_up(folder)
        # --resume can continue only once the journal is there to say what the plan was.
        raise cannot_write(folder, e, resumable=journal is not None) from None
    except BaseException:
        _clean_up(folder)  # what stopped workers left behind (Ctrl-C, errors)
        raise
    return manifest


def _clean_up(folder: Folder) -> None:
    """After a failed or interrupted run: no temporary file, no index without its shard.
    Finished shards and the journal stay, for --resume."""
    with contextlib.suppress(OSError):
        folder.remove_incomplete()
        remove_orphan_indexes(folder)


def _manifest(
    src: storage.Location,
    opts: PackOptions,
    scanned: Scan,
    specs: list[ShardSpec],
    done: dict[str, ShardResult],
) -> Manifest:
    """The manifest, from the per-shard results in shard order (the same whether the shards
    were written in one run or over several, by any executor)."""
    stats = Stats()
    split_stats: dict[str, Stats] = {}
    skipped = list(scanned.skipped)
    transcoded: list[Note] = []
    for spec in specs:
        result = done[spec.name]
        merge_stats(stats, result.stats)
        if spec.split is not None:
            merge_stats(split_stats.setdefault(spec.split, Stats()), result.stats)
        skipped.extend(result.skipped)
        transcoded.extend(result.transcoded)
    splits = None
    if opts.split:
        empty = Stats()
        splits = {
            name: SplitInfo(
                ratio,
                split_stats.get(name, empty).records,
                dict(split_stats.get(name, empty).labels),
            )
            for name, ratio in opts.split
        }
    return Manifest(
        source=str(src),
        options=PackOptions.from_recorded(opts.recorded()),  # what shaped the output only
        labels=scanned.walk.labels,
        shards=[done[spec.name].entry for spec in specs],
        ignored=scanned.ignored,
        skipped=skipped,
        transcoded=transcoded,
        stats=stats,
        splits=splits,
        annotations=scanned.walk.annotations,
    )


@dataclass(frozen=True)
class PartPlan:
    """One run of shards with a common name (a split, or the whole dataset)."""

    name: str
    split: str | None
    images: int
    shards: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "images": self.images,
                "shards": self.shards}  # fmt: skip


@dataclass(frozen=True)
class PackPlan:
    """What ``pack`` would do (``--dry-run``)."""

    out: str
    images: int
    labels: dict[str, int]
    ignored: int
    skipped: list[Note]
    format: str
    estimated_bytes: int | None
    dense_bytes: int
    parts: list[PartPlan]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "out": self.out,
            "images": self.images,
            "labels": dict(self.labels),
            "ignored": self.ignored,
            "skipped": [s.to_dict() for s in self.skipped],
            "format": self.format,
            "estimated_bytes": self.estimated_bytes,
            "dense_bytes": self.dense_bytes,
            "shards": [p.to_dict() for p in self.parts],
        }


def plan(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
) -> PackPlan:
    """What ``pack`` would do, without writing anything (``--dry-run``): it accepts and
    refuses what ``pack`` does.

    The stored size is estimated from up to 24 images, evenly drawn, loaded with the real
    options; the shard plan is exactly the one ``pack`` would follow.
    """
    opts = options or PackOptions()
    check(opts, src, out)
    executor = executor_for(opts)
    try:
        executor.check()
    finally:
        executor.close()
    src_at, out_at = storage.location(src), storage.location(out)
    scanned = scan_source(src_at, out_at, opts, progress or no_progress)
    specs = plan_shards(scanned.candidates, scanned.estimate, opts)
    step = max(1, len(scanned.candidates) // 24)
    stored = basis = 0
    for k in range(0, len(scanned.candidates), step)[:24]:
        result = load_or_skip(scanned.candidates[k], opts.image_options())
        if not isinstance(result, Skipped):
            stored += len(result.data)
            basis += scanned.dense[k]
    dense = sum(scanned.dense)
    labels: dict[str, int] = {}
    for item in scanned.candidates:
        key = item.text or "(unlabelled)"
        labels[key] = labels.get(key, 0) + 1
    parts: dict[str, PartPlan] = {}
    for spec in specs:
        seen = parts.get(spec.prefix, PartPlan(spec.prefix, spec.split, 0, 0))
        parts[spec.prefix] = replace(seen, images=seen.images + len(spec.items),
                                     shards=seen.shards + 1)  # fmt: skip
    return PackPlan(
        out=str(out_at),
        images=len(scanned.candidates),
        labels={n: labels.get(n, 0) for n in scanned.walk.labels} | labels,
        ignored=scanned.ignored,
        skipped=scanned.skipped,
        format=opts.format,
        estimated_bytes=round(dense * stored / basis) if basis else None,
        dense_bytes=dense,
        parts=list(parts.values()),
    )
