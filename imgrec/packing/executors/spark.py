"""The Spark executor: headers read and shards written by Apache Spark tasks
(``--runner spark``), through PySpark.

``packing.driver.pack`` does everything around the image work, as for every executor, and
the tasks are those of ``executors.tasks``, as on Beam. Two Spark jobs:

- the scan: one task per run of the listing's lines (written to OUT), each writing its
  header looks as an answers file beside it; the driver reads them back in order.
- the shards: one element per shard (where its images are listed in the work list) ->
  its images, spread over ``spark.default.parallelism`` partitions -> each image packed
  -> grouped by shard -> each shard written from its images in plan order, then recorded
  in the journal.

The driver holds nothing per image (the listing, the candidates and the plan are files, as
on Beam) and collects only shard names. A task that fails is retried by Spark; every file
a task writes appears whole under its final name (``storage``: a temporary name of each
attempt's own), and two attempts at a shard write the same bytes, so a retried or
speculative task never leaves a partial or a second shard. SRC and OUT must be places the
driver and every executor see alike: a shared filesystem mounted alike, or an object store.

The session is the one the application runs in, if there is one (a notebook's, a
``spark-submit`` job's); otherwise one is made from ``--spark-master`` and
``--spark-conf``, over what ``spark-defaults.conf`` says, and stopped at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from ...core import spool, storage
from ...core.errors import DependencyError, InputError, OutputError
from ...core.progress import Progress
from ...core.storage import Folder, Location
from ...format.options import PackOptions
from ...images.loading import ImageOptions
from ..encode import ShardResult
from ..journal import Journal
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

SPARK_HINT = 'PySpark is not installed (needed by --runner spark): pip install "imgrec[spark]"'
IMAGES_PER_PARTITION = 64  # the shards' images are spread in partitions of about this many
SCAN_TASKS_PER_CORE = 4  # the scan's runs of the listing


def spark_settings(conf: Sequence[str]) -> list[tuple[str, str]]:
    """The ``--spark-conf KEY=VALUE`` values, checked."""
    settings = []
    for setting in conf:
        key, eq, value = setting.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise InputError(
                f"--spark-conf wants KEY=VALUE, e.g. spark.executor.memory=4g; got {setting!r}"
            )
        settings.append((key, value))
    return settings


class SparkExecutor:
    """``master``: a Spark master URL (``spark://host:7077``, ``yarn``, ``local[4]``), None
    for what the configuration says; ``conf``: ``KEY=VALUE`` Spark settings."""

    resume = "--resume"  # how a user resumes a run of this executor

    def __init__(self, master: str | None = None, conf: Sequence[str] = ()) -> None:
        self.master = master
        self.settings = spark_settings(conf)
        self._session: Any = None
        self._own = False  # made here, so stopped here
        self._store: spool.Disk | None = None

    def check(self) -> None:
        """Start (or join) the Spark session: a master that cannot be reached or a bad
        setting stops the run before OUT changes."""
        self._context()

    def _context(self) -> Any:
        if self._session is not None:
            return self._session.sparkContext
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise DependencyError(SPARK_HINT) from None
        active = SparkSession.getActiveSession()
        if active is not None and self.master is None and not self.settings:
            self._session = active
            return active.sparkContext
        builder = SparkSession.builder.appName("imgrec pack")
        if self.master is not None:
            builder = builder.master(self.master)
        settings = dict(self.settings)
        settings.setdefault("spark.ui.showConsoleProgress", "false")  # imgrec says how it went
        for key, value in settings.items():
            builder = builder.config(key, value)
        try:
            self._session = builder.getOrCreate()
        except Exception as e:  # Py4J's and the JVM's error types
            lines = [line.strip(" :") for line in str(e).splitlines() if "Exception" in line]
            cause = lines[0] if lines else type(e).__name__
            where = self.master or "the master spark-defaults.conf names"
            raise InputError(
                f"Spark could not start a session on {where} ({cause}); check --spark-master"
                " (is the master up?) and --spark-conf"
            ) from None
        self._own = active is None
        return self._session.sparkContext

    def _run(self, job: Any, out: Folder, advice: str) -> list[Any]:
        """Collect a job's (few) results; its failure as one line."""
        try:
            return list(job.collect())
        except Exception as e:  # Py4JJavaError and the like; KeyboardInterrupt goes through
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            cause = next((line for line in lines if "Error:" in line), lines[0] if lines else "")
            raise OutputError(f"{out}: the Spark job failed ({cause[:300]}); {advice}") from e

    def scan_source(
        self, src: Location, out: Folder, opts: PackOptions, progress: Progress
    ) -> Scan:
        """The listing on the driver, streamed to disk; the look at each file's header in
        Spark tasks; what they found classified on the driver, one file at a time."""
        self._close_store()
        self._store = spool.Disk()
        found = listing(src, out.where, opts, progress, self._store)
        items = found.items
        progress("scan", 0, len(items))
        sc = self._context()
        # A Spark task costs tens of milliseconds of its own (250 tasks of 16 files took
        # 11.5 s of a 27.5 s pack of 4,000 photos on 2 cores): a few runs per core.
        tasks = write_listing(out, items, SCAN_TASKS_PER_CORE * sc.defaultParallelism)
        at = str(storage.absolute(out.at(LISTING)))
        anywhere = Folder(storage.absolute(out.where))
        look = partial(probe_task, listing=at, out=anywhere, max_pixels=opts.max_pixels,
                       threads=probe_threads(items))  # fmt: skip
        if tasks:
            job = sc.parallelize(tasks, len(tasks)).map(look)
            self._run(job, out, "nothing was written yet, run again")
        looked = zip(items, read_answers(out, tasks), strict=True)
        scan = classify(src, opts, found, looked, progress, self._store)
        progress("scan", len(items), len(items))
        return scan

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
            self._close_store()  # the work list now holds what was read from the scan's files
        splits = {spec.name: spec.split for spec in specs}
        work = str(storage.absolute(out.at(journal.name(WORK))))
        anywhere = Journal(Folder(storage.absolute(out.where)), journal.key)
        sc = self._context()
        spread = max(sc.defaultParallelism, -(-total // IMAGES_PER_PARTITION))
        planned = sc.parallelize(tasks, len(tasks)).flatMap(partial(read_work, work=work))
        job = (
            self._packed(planned, spread, image_options)
            .groupByKey(numPartitions=len(tasks))
            .map(partial(write_group, journal=anywhere, splits=splits))
        )
        self._run(job, out, f"finished shards are kept, run again with {self.resume}")
        results = recorded_results(journal, specs, out, "the Spark job", self.resume)
        progress("pack", total, total)
        yield from results

    def _packed(self, planned: Any, spread: int, image_options: ImageOptions) -> Any:
        """The plan's images, ``(shard, position, item)``, each packed into ``(shard,
        (position, item, result))``, over ``spread`` partitions."""
        return planned.repartition(spread).map(partial(pack_task, image_options=image_options))

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Remove the scan's files on this machine; stop the session if it was made here."""
        self._close_store()
        if self._own and self._session is not None:
            self._session.stop()
        self._session, self._own = None, False
