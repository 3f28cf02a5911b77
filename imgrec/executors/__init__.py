"""Executors turn shard specs into finished shards; everything around that (checks, scan,
plan, journal, manifest, clean-up) is done once, by ``run.pack``, for every executor.

- ``local``: processes on this machine (``--workers``).
- ``beam``: an Apache Beam pipeline (``--runner beam`` or a named Beam runner).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..encode import ShardResult
from ..images import Options
from ..journal import Journal
from ..options import PackOptions, Progress
from ..scan import Scan
from ..sharding import ShardSpec
from ..storage import Folder, Location


class Executor(Protocol):
    def check(self) -> None:
        """Refuse settings that cannot work, before OUT is touched."""

    def scan(self, src: Location, out: Folder, opts: PackOptions, progress: Progress) -> Scan:
        """What SRC holds: images to pack, skipped, ignored; the facts the plan needs."""
        ...

    def write(
        self,
        specs: list[ShardSpec],
        out: Folder,
        image_options: Options,
        journal: Journal,
        progress: Progress,
    ) -> Iterator[ShardResult]:
        """Write these shards (and their index files) into ``out``, atomically; yield each
        one's result in ``specs`` order, once ``journal`` has recorded it."""
        ...

    def close(self) -> None:
        """Remove what the run kept on this machine (the scan's and the plan's files); called
        once, when the run ends, however it ends."""
