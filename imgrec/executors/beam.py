"""The Beam executor: shards written by an Apache Beam pipeline.

``run.pack`` does everything around the image work, as for the local executor. The
pipeline does what the local executor's workers do::

    one element per shard to write: (name, where its images are listed in work.jsonl)
      | FlatMap    read the shard's images from the work list  -> (name, position, item)
      | Reshuffle                                               spread the images over workers
      | Map        encode.pack_one                              -> (name, (position, item, result))
      | GroupByKey                                              one group per shard
      | Map        sort by position, encode.write_shard         -> shard + .idx (atomic), and
                                                                   its journal entry

A shard's bytes depend only on the plan and the per-image results, so the output is
byte-identical to the local executor's. Workers hand their results back through the
journal in OUT, which also lets ``--resume`` keep what an interrupted pipeline finished.
SRC and OUT must therefore be places that the driver and every worker see alike: URLs of an
object store, a local disk for the DirectRunner, or a shared filesystem mounted alike.

apache_beam is imported only when a pipeline is made.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import storage
from ..deps import import_beam
from ..discover import Item
from ..encode import Packed, ShardResult, Skipped, pack_one, write_shard
from ..errors import InputError, OutputError
from ..images import Options
from ..journal import Journal
from ..options import RUNNERS, PackOptions, Progress
from ..scan import Scan, scan
from ..sharding import ShardSpec
from ..storage import Folder, Location

WORK = "work.jsonl"  # in the journal: each shard's images, one JSON line each

# (shard name, byte range of its lines in the work list)
ShardTask = tuple[str, int, int]


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


class BeamExecutor:
    """``runner`` is ``"beam"`` (Beam's default runner, the DirectRunner, unless
    ``beam_options`` names one) or one of ``RUNNERS``; ``beam_options`` are ``KEY=VALUE``
    (or ``KEY``) strings given to Beam's PipelineOptions as ``--KEY=VALUE``."""

    def __init__(self, runner: str = "beam", beam_options: Sequence[str] = ()) -> None:
        self.flags = pipeline_flags(runner, beam_options)
        self._pipeline: Any = None

    def check(self) -> None:
        """Make the (empty) pipeline: bad options stop the run before OUT changes, and Beam's
        filesystems get their options (credentials, endpoints) for the URLs."""
        beam = import_beam()
        from apache_beam.options.pipeline_options import PipelineOptions

        try:
            self._pipeline = beam.Pipeline(options=PipelineOptions(self.flags))
        except ValueError as e:  # an unknown runner, a malformed option
            raise InputError(f"Beam cannot make the pipeline: {e}") from None
        storage.forget_clients()  # the pipeline gave Beam's filesystems its options

    def scan(self, src: Location, out: Folder, opts: PackOptions, progress: Progress) -> Scan:
        """On the driver: the listing and a look at each file's header (16 at a time when
        SRC is on an object store)."""
        return scan(src, out.where, opts, progress)

    def write(
        self,
        specs: list[ShardSpec],
        out: Folder,
        image_options: Options,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        if not specs:
            return
        if self._pipeline is None:
            self.check()
        beam = import_beam()
        from apache_beam.runners.runner import PipelineState

        total = sum(len(spec.items) for spec in specs)
        progress("pack", 0, total)
        tasks = _write_work(out, journal, specs)
        splits = {spec.name: spec.split for spec in specs}
        work = str(storage.absolute(out.at(journal.name(WORK))))
        # Absolute: workers need not share the driver's working folder.
        anywhere = Journal(Folder(storage.absolute(out.where)), journal.key)
        _ = (
            self._pipeline
            | "Shards" >> beam.Create(tasks)
            | "ReadPlan" >> beam.FlatMap(_read_work, work)
            | "Spread" >> beam.Reshuffle()
            | "PackImage" >> beam.Map(_pack_task, image_options)
            | "ByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(_write_group, anywhere, splits)
        )
        try:
            state = self._pipeline.run().wait_until_finish()
        except Exception as e:  # the runner's own error types; KeyboardInterrupt goes through
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise OutputError(
                f"{out}: the Beam pipeline failed ({first}); finished shards are kept,"
                " run again with --resume"
            ) from e
        finally:
            self._pipeline = None  # a pipeline runs once
        if state is not None and state != PipelineState.DONE:
            raise OutputError(f"{out}: the Beam pipeline ended as {state}; run again with --resume")
        results = [journal.recorded(spec) for spec in specs]
        missing = [spec.name for spec, r in zip(specs, results, strict=True) if r is None]
        if missing:
            raise OutputError(
                f"{out}: the Beam pipeline ended without writing {len(missing)} shard(s)"
                f" ({missing[0]}, ...); run again with --resume"
            )
        progress("pack", total, total)
        yield from (r for r in results if r is not None)


def _write_work(out: Folder, journal: Journal, specs: list[ShardSpec]) -> list[ShardTask]:
    """Write each shard's images, in plan order, as JSON lines; returns where each shard's
    lines are. Only these few numbers go into the pipeline, however many images there are."""
    tasks = []
    with out.open_write(journal.name(WORK)) as f:
        offset = 0
        for spec in specs:
            start = offset
            for position, item in enumerate(spec.items):
                # Absolute: workers need not share the driver's working folder. The path is
                # only used to read the image; what is stored comes from rel, label, text.
                path = str(storage.absolute(item.path))
                fields = [position, path, item.rel, item.label, item.text]
                line = json.dumps(fields, ensure_ascii=True).encode() + b"\n"
                f.write(line)
                offset += len(line)
            tasks.append((spec.name, start, offset))
    return tasks


def _read_work(task: ShardTask, work: str) -> Iterator[tuple[str, int, Item]]:
    name, start, stop = task
    with storage.open_read(storage.parse(work)) as f:
        f.seek(start)
        lines = f.read(stop - start).splitlines()
    for line in lines:
        position, path, rel, label, text = json.loads(line)
        yield name, position, Item(storage.parse(path), rel, label, text)


def _pack_task(
    task: tuple[str, int, Item], image_options: Options
) -> tuple[str, tuple[int, Item, Packed | Skipped]]:
    name, position, item = task
    return name, (position, item, pack_one(item, image_options))


def _write_group(
    group: tuple[str, Iterable[tuple[int, Item, Packed | Skipped]]],
    journal: Journal,
    splits: dict[str, str | None],
) -> str:
    """Write one shard from its images' results, in plan order, and record it."""
    name, grouped = group
    ordered = sorted(grouped, key=lambda r: r[0])
    spec = ShardSpec(name, splits[name], tuple(item for _, item, _ in ordered))
    results = [r for _, _, r in ordered]
    out = journal.out
    if isinstance(out.where, Path):
        result = write_shard(out.where, spec, results)
    else:  # written on the worker's disk, then copied up: the index first, as locally
        with tempfile.TemporaryDirectory(prefix="imgrec-") as tmp:
            result = write_shard(Path(tmp), spec, results)
            out.put(spec.index, Path(tmp) / spec.index)
            out.put(spec.name, Path(tmp) / spec.name)
    journal.record(result)
    return name
