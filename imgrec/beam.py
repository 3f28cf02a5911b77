"""``imgrec pack`` as an Apache Beam pipeline: the same pack, another executor.

The driver (the process running ``imgrec pack --runner ...``) does what the local pack
does around the image work, with packing.py's own functions: it checks OUT, scans SRC and
makes the plan (``scan``, ``plan_parts``: the same splits, shuffle and shard plan), and
at the end writes the manifest (``_manifest``, ``manifest_io.write``). In between, the
pipeline does what the local pack's worker processes and its shard loop do::

    one element per shard to write: (name, where its images are listed in plan.jsonl)
      | FlatMap  read the shard's images from the plan   -> (name, position, item)
      | Reshuffle                                         spread the images over workers
      | Map      packing._pack_one                        -> (name, (position, item, result))
      | GroupByKey                                        one group per shard
      | Map      sort by position, packing._write_shard   -> shard + .idx (atomic), and the
                                                             shard's journal entry

A shard's bytes depend only on the plan and the per-image results, so the output folder
is byte-identical to a local pack's with the same options (shards, index files, manifest).

Workers hand their results back through files in OUT (``.imgrec-journal.d/``): one journal
entry per finished shard, what the local pack keeps in its journal. They make
``--resume`` work after an interrupted pipeline, and are removed with the journal when the
manifest is written. SRC and OUT must therefore be places that the driver and every worker
see alike: URLs of an object store (storage.py reads and writes them through Beam's
filesystems), a local disk for the DirectRunner, or a shared filesystem mounted alike.

apache_beam is imported only when a pipeline is run: importing this module does not
need it.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import images, packing, storage
from . import manifest as manifest_io
from .discover import Item
from .errors import DependencyError, InputError, OutputError

INSTALL_HINT = 'Apache Beam is not installed (needed by --runner beam): pip install "imgrec[beam]"'
RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
# Beside the journal: the plan the workers read, and one journal entry per finished shard.
PARTS = packing.JOURNAL.removesuffix(".json") + ".d"
PLAN = "plan.jsonl"

# (shard name, byte range of its lines in the plan file)
ShardTask = tuple[str, int, int]


def pack(
    src: str | Path,
    out: str | Path,
    options: packing.PackOptions | None = None,
    progress: packing.Progress | None = None,
    resume: bool = False,
    runner: str = "beam",
    beam_options: Sequence[str] = (),
) -> dict[str, Any]:
    """``packing.pack`` run as a Beam pipeline; returns the manifest.

    ``runner`` is ``"beam"`` (Beam's default runner, the DirectRunner, unless
    ``beam_options`` names one) or one of ``RUNNERS``; ``beam_options`` are ``KEY=VALUE``
    (or ``KEY``) strings given to Beam's PipelineOptions as ``--KEY=VALUE``. The output is
    byte-identical to ``packing.pack``'s for the same options; ``options.workers`` is not
    used (the runner decides the parallelism).
    """
    beam = import_beam()
    # Made first: it checks the options, and gives Beam's filesystems theirs (credentials).
    pipeline = _pipeline(beam, pipeline_flags(runner, beam_options))
    opts = options or packing.PackOptions()
    packing._check_options(opts)
    src, out = storage.location(src), storage.location(out)
    note = progress or (lambda stage, done, total: None)
    folder = storage.Folder(out)

    # What packing.pack does before loading images, step for step.
    journal = packing._check_out(src, folder, opts.overwrite, resume)
    found = packing.scan(src, out, opts, note)
    packing._prepare_out(folder, resuming=journal is not None)
    if journal is None:
        folder.delete_tree(PARTS)  # entries of another run's plan
    candidates = found.candidates
    parts = packing.plan_parts(candidates, found.estimate, opts)
    journal = packing.open_journal(folder, journal, opts, found.found.labels, candidates)
    done: dict[str, Any] = journal["done"]
    shard_names = [
        (part, index, f"{part.name}-{index:05d}-of-{len(part.plan):05d}.tfrecord")
        for part in parts
        for index in range(len(part.plan))
    ]
    done.update(_read_entries(folder, [name for _, _, name in shard_names]))
    todo = [s for s in shard_names if not packing._finished(folder, done.get(s[2]))]

    try:
        packing._write_json(folder, packing.JOURNAL, journal)
        if todo:
            images_todo = sum(part.plan[i][1] - part.plan[i][0] for part, i, _ in todo)
            note("pack", 0, images_todo)
            for _, _, name in todo:  # an entry must come from this run's shard
                folder.delete(_entry_name(name))
            tasks = _write_plan(folder, todo)
            splits = {name: part.split for part, _, name in todo}
            _run(beam, pipeline, tasks, folder, splits, opts.image_options())
            entries = _read_entries(folder, [name for _, _, name in todo])
            missing = [name for _, _, name in todo if name not in entries]
            if missing:
                raise OutputError(
                    f"{out}: the Beam pipeline ended without writing {len(missing)} shard(s)"
                    f" ({missing[0]}, ...); run again with --resume"
                )
            done.update(entries)
            packing._write_json(folder, packing.JOURNAL, journal)
            note("pack", images_todo, images_todo)
        _fail_on_skips(opts, parts, shard_names, done)
        manifest = packing._manifest(
            src, opts, found.found.labels, found.ignored, found.skipped, parts, shard_names, done
        )
        listed = {s["file"] for s in manifest["shards"]} | {s["index"] for s in manifest["shards"]}
        packing._remove_stale(folder, listed)
        manifest_io.write(folder, manifest)
    except OSError as e:
        raise OutputError(
            f"{out}: cannot write ({e.strerror or e}); finished shards are kept,"
            " free some space (or fix the folder) and run again with --resume"
        ) from None
    packing.close_journal(folder)
    folder.delete_tree(PARTS)
    return manifest


def pipeline_flags(runner: str, beam_options: Sequence[str]) -> list[str]:
    """Beam's command-line flags for ``--runner`` and the ``--beam-option`` values."""
    if runner != "beam" and runner not in RUNNERS:
        raise InputError(f"unknown Beam runner {runner!r}; use beam or one of {', '.join(RUNNERS)}")
    flags = [] if runner == "beam" else [f"--runner={runner}"]
    for option in beam_options:
        key, eq, value = option.lstrip("-").partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
            raise InputError(
                f"--beam-option wants KEY=VALUE (or a flag KEY), e.g. region=europe-west1;"
                f" got {option!r}"
            )
        if key == "runner" and runner != "beam":
            raise InputError(f"the runner is given twice: --runner {runner} and {option!r}")
        flags.append(f"--{key}={value}" if eq else f"--{key}")
    return flags


def import_beam() -> Any:
    """The apache_beam module, or a DependencyError saying how to install it."""
    quiet = _DropMessage("apitools not found")  # noise of Beam's GCP modules on import
    logging.getLogger().addFilter(quiet)
    try:
        import apache_beam
    except ImportError:
        raise DependencyError(INSTALL_HINT) from None
    finally:
        logging.getLogger().removeFilter(quiet)
    retries = logging.getLogger("apache_beam.utils.retry")
    if not any(isinstance(f, _FirstLine) for f in retries.filters):
        retries.addFilter(_FirstLine())
    return apache_beam


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


class _FirstLine(logging.Filter):
    """Beam logs each retry of an object-store call with the whole traceback; one line is
    kept ("Retry with exponential backoff: waiting ... because we caught exception: ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = (record.getMessage().strip().splitlines() or [""])[0]
        record.args = ()
        record.exc_info = record.exc_text = None
        return True


def _pipeline(beam: Any, flags: list[str]) -> Any:
    """An empty pipeline: made first, so that bad options stop the run before OUT changes."""
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        pipeline = beam.Pipeline(options=PipelineOptions(flags))
    except ValueError as e:  # an unknown runner, a malformed option
        raise InputError(f"Beam cannot make the pipeline: {e}") from None
    storage.forget_clients()  # the pipeline gave Beam's filesystems its options
    return pipeline


def _run(
    beam: Any,
    pipeline: Any,
    tasks: list[ShardTask],
    out: storage.Folder,
    splits: dict[str, str | None],
    image_options: images.Options,
) -> None:
    from apache_beam.runners.runner import PipelineState

    plan = str(storage.absolute(out.at(f"{PARTS}/{PLAN}")))
    _ = (
        pipeline
        | "Shards" >> beam.Create(tasks)
        | "ReadPlan" >> beam.FlatMap(_read_plan, plan)
        | "Spread" >> beam.Reshuffle()
        | "PackImage" >> beam.Map(_pack_task, image_options)
        | "ByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.Map(_write_group, str(storage.absolute(out.where)), splits)
    )
    try:
        state = pipeline.run().wait_until_finish()
    except Exception as e:  # the runner's own error types; KeyboardInterrupt goes through
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise OutputError(
            f"{out}: the Beam pipeline failed ({first}); finished shards are kept,"
            " run again with --resume"
        ) from e
    if state is not None and state != PipelineState.DONE:
        raise OutputError(f"{out}: the Beam pipeline ended as {state}; run again with --resume")


def _write_plan(out: storage.Folder, todo: list[tuple[packing.Part, int, str]]) -> list[ShardTask]:
    """Write each shard's images, in plan order, as JSON lines; returns where each shard's
    lines are. Only these few numbers go into the pipeline, however many images there are."""
    tasks = []
    with out.open_write(f"{PARTS}/{PLAN}") as f:
        offset = 0
        for part, index, name in todo:
            start = offset
            for position, item in enumerate(part.items[slice(*part.plan[index])]):
                # Absolute: workers need not share the driver's working folder. The path is
                # only used to read the image; what is stored comes from rel, label, text.
                path = str(storage.absolute(item.path))
                fields = [position, path, item.rel, item.label, item.text]
                line = json.dumps(fields, ensure_ascii=True).encode() + b"\n"
                f.write(line)
                offset += len(line)
            tasks.append((name, start, offset))
    return tasks


def _read_plan(task: ShardTask, plan: str) -> Iterator[tuple[str, int, Item]]:
    name, start, stop = task
    with storage.open_read(storage.parse(plan)) as f:
        f.seek(start)
        lines = f.read(stop - start).splitlines()
    for line in lines:
        position, path, rel, label, text = json.loads(line)
        yield name, position, Item(storage.parse(path), rel, label, text)


def _pack_task(
    task: tuple[str, int, Item], image_options: images.Options
) -> tuple[str, tuple[int, Item, packing.Packed | str]]:
    name, position, item = task
    return name, (position, item, packing._pack_one((item, image_options)))


def _write_group(
    group: tuple[str, Iterable[tuple[int, Item, packing.Packed | str]]],
    out: str,
    splits: dict[str, str | None],
) -> str:
    """Write one shard from its images' results, in plan order, and its journal entry."""
    name, grouped = group
    ordered = sorted(grouped, key=lambda r: r[0])
    # Skips are recorded, never raised here: with --on-error fail the driver stops the run
    # at the first one, in shard order, once the pipeline is done.
    skip = packing._skipper(packing.PackOptions(on_error="skip"))
    items = [item for _, item, _ in ordered]
    results = iter([r for _, _, r in ordered])
    folder = storage.Folder(storage.parse(out))
    if isinstance(folder.where, Path):
        entry = packing._write_shard(folder.where / name, splits[name], items, results, skip)
    else:  # written on the worker's disk, then copied up: the index first, as locally
        with tempfile.TemporaryDirectory(prefix="imgrec-") as tmp:
            entry = packing._write_shard(Path(tmp) / name, splits[name], items, results, skip)
            folder.put(entry["entry"]["index"], Path(tmp) / entry["entry"]["index"])
            folder.put(name, Path(tmp) / name)
    packing._write_json(folder, _entry_name(name), entry)
    return name


def _entry_name(shard: str) -> str:
    """Where a worker leaves the journal entry of the shard it wrote."""
    return f"{PARTS}/{shard}.json"


def _read_entries(out: storage.Folder, names: list[str]) -> dict[str, Any]:
    """The journal entries that workers wrote for these shards."""
    entries = {}
    for name in names:
        try:
            entries[name] = json.loads(out.read(_entry_name(name)))
        except (OSError, ValueError):
            continue  # not finished (or unreadable): the shard is written again
    return entries


def _fail_on_skips(
    opts: packing.PackOptions,
    parts: list[packing.Part],
    shard_names: list[tuple[packing.Part, int, str]],
    done: dict[str, Any],
) -> None:
    """``--on-error fail``: the first image skipped while loading, in shard order, is the
    error (as the local pack raises it); no manifest is written."""
    if opts.on_error != "fail":
        return
    paths = {item.rel: item.path for part in parts for item in part.items}
    skip = packing._skipper(opts)
    for _, _, name in shard_names:
        for s in done[name]["skipped"]:
            skip(Item(paths.get(s["path"], s["path"]), s["path"], -1, ""), s["reason"], [])
