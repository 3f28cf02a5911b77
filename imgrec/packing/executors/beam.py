"""The Beam executor: headers read and shards written by Apache Beam pipelines.

``packing.driver.pack`` does everything around the image work, as for the local executor.
The driver holds nothing per image: the listing streams to files on its disk (``spool``),
and so do the candidates and the shard plan. Two pipelines do the work on the images.

The scan: the listing is written to ``listing.jsonl`` in OUT's working folder, in runs of
consecutive lines; each run becomes one element::

    (answers file, byte range of its lines)
      | Reshuffle                                               spread the runs over workers
      | Map        payloads.probe_item of each image (16 at a time   -> one JSON line per image in
                   on an object store)                             the answers file

and the driver reads the answers back in listing order to classify them. The shards::

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

import re
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

from ...core import spool, storage
from ...core.deps import import_beam
from ...core.errors import InputError, OutputError
from ...core.progress import Progress
from ...core.storage import Folder, Location
from ...format.options import RUNNERS, PackOptions
from ...images.loading import ImageOptions
from ..discover import Item
from ..encode import ShardResult
from ..journal import Journal
from ..payloads import Probed
from ..scan import Scan, classify, listing
from ..sharding import ShardSpec
from .tasks import (
    LISTING,
    WORK,
    pack_task,
    probe_task,
    probe_threads,
    read_answers,
    read_work,
    recorded_results,
    write_group,
    write_listing,
    write_work,
)


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
        self._store: spool.Disk | None = None

    def check(self) -> None:
        """Make an (empty) pipeline: bad options stop the run before OUT changes, and Beam's
        filesystems get their options (credentials, endpoints) for the URLs. The pipeline
        never runs, so its local temporary folder (which Beam removes when one does) is
        removed here."""
        pipeline = self._new_pipeline()
        shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)

    def _new_pipeline(self) -> Any:
        """A pipeline with the run's options (each runs once)."""
        beam = import_beam()
        from apache_beam.options.pipeline_options import PipelineOptions

        try:
            pipeline = beam.Pipeline(options=PipelineOptions(self.flags))
        except ValueError as e:  # an unknown runner, a malformed option
            raise InputError(f"Beam cannot make the pipeline: {e}") from None
        storage.forget_clients()  # the pipeline gave Beam's filesystems its options
        return pipeline

    def _run(self, pipeline: Any, out: Folder, advice: str) -> None:
        from apache_beam.runners.runner import PipelineState

        try:
            state = pipeline.run().wait_until_finish()
        except Exception as e:  # the runner's own error types; KeyboardInterrupt goes through
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise OutputError(f"{out}: the Beam pipeline failed ({first}); {advice}") from e
        if state is not None and state != PipelineState.DONE:
            raise OutputError(f"{out}: the Beam pipeline ended as {state}; {advice}")

    def scan_source(
        self, src: Location, out: Folder, opts: PackOptions, progress: Progress
    ) -> Scan:
        """The listing on the driver, streamed to disk (an object-store prefix's is never
        held in memory); the look at each file's header in a first pipeline; what it found
        classified on the driver, one file at a time."""
        self.close()
        self._store = spool.Disk()
        found = listing(src, out.where, opts, progress, self._store)
        answers = self._probe(found.items, out, opts.max_pixels, progress)
        looked = zip(found.items, answers, strict=True)
        return classify(src, opts, found, looked, progress, self._store)

    def close(self) -> None:
        """Remove the scan's files on this machine."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _probe(
        self, items: Sequence[Item], out: Folder, max_pixels: int, progress: Progress
    ) -> Iterator[Probed]:
        """``loading.probe_file`` of each item, in order, computed by a pipeline: the items go to
        the workers in runs of consecutive lines of a listing file in OUT, and each run's
        answers come back as a file beside it."""
        progress("scan", 0, len(items))
        tasks = write_listing(out, items)
        at = str(storage.absolute(out.at(LISTING)))
        anywhere = Folder(storage.absolute(out.where))
        threads = probe_threads(items)
        beam = import_beam()
        pipeline = self._new_pipeline()
        _ = (
            pipeline
            | "Runs" >> beam.Create(tasks)
            | "Spread" >> beam.Reshuffle()
            | "Probe" >> beam.Map(probe_task, at, anywhere, max_pixels, threads)
        )
        self._run(pipeline, out, "nothing was written yet, run again")
        yield from read_answers(out, tasks)
        progress("scan", len(items), len(items))

    def write(
        self,
        specs: list[ShardSpec],
        out: Folder,
        image_options: ImageOptions,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        total = sum(len(spec.items) for spec in specs)
        try:
            if not specs:
                return
            progress("pack", 0, total)
            tasks = write_work(out, journal, specs)
        finally:
            self.close()  # the scan's files: the work list now holds what was read from them
        beam = import_beam()
        splits = {spec.name: spec.split for spec in specs}
        work = str(storage.absolute(out.at(journal.name(WORK))))
        # Absolute: workers need not share the driver's working folder.
        anywhere = Journal(Folder(storage.absolute(out.where)), journal.key)
        pipeline = self._new_pipeline()
        _ = (
            pipeline
            | "Shards" >> beam.Create(tasks)
            | "ReadPlan" >> beam.FlatMap(read_work, work)
            | "Spread" >> beam.Reshuffle()
            | "PackImage" >> beam.Map(pack_task, image_options)
            | "ByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(write_group, anywhere, splits)
        )
        self._run(pipeline, out, "finished shards are kept, run again with --resume")
        results = recorded_results(journal, specs, out, "the Beam pipeline", "--resume")
        progress("pack", total, total)
        yield from results
