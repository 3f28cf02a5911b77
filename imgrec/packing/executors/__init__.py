"""Executors turn shard specs into finished shards; everything around that (checks, scan,
plan, journal, manifest, clean-up) is done once, by ``packing.driver.pack``, for every executor.

- ``local``: processes on this machine (``--workers``).
- ``beam``: an Apache Beam pipeline (``--runner beam`` or a named Beam runner).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ...core.progress import Progress
from ...core.storage import Folder, Location
from ...format.options import PackOptions
from ...images.loading import ImageOptions
from ..encode import ShardResult
from ..journal import Journal
from ..scan import Scan
from ..sharding import ShardSpec


class Executor(Protocol):
    def check(self) -> None:
        """Refuse settings that cannot work, before OUT is touched."""

    def scan_source(
        self, src: Location, out: Folder, opts: PackOptions, progress: Progress
    ) -> Scan:
        """What SRC holds: images to pack, skipped, ignored; the facts the plan needs."""
        ...

    def write(
        self,
        specs: list[ShardSpec],
        out: Folder,
        image_options: ImageOptions,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        """Write these shards (and their index files) into ``out``, atomically; yield each
        one's result in ``specs`` order, once ``journal`` has recorded it."""
        ...

    def close(self) -> None:
        """Remove what the run kept on this machine (the scan's and the plan's files); called
        once, when the run ends, however it ends."""
