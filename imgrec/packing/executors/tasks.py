"""The work of a distributed run, shared by the executors that hand it to an engine
(``beam``, ``spark``): the scan's tasks (a run of the listing's lines -> their header
looks, as an answers file in OUT) and the shards' (the work list of each shard's images,
each image packed, each shard written from its images' results in plan order and recorded
in the journal). Each task reads and writes only through OUT, so it may run on any
machine, and again: what it writes appears whole, under its final name, once."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from ...core import storage
from ...core.errors import OutputError
from ...core.storage import Folder
from ...format.layout import PIECES
from ...images.loading import ImageOptions
from ..discover import Item, decode_item, encode_item
from ..encode import Packed, ShardResult, Skipped, pack_one, write_shard
from ..journal import Journal
from ..payloads import Probed, portable, unportable
from ..scan import probe_items
from ..sharding import ShardSpec

WORK = "work.jsonl"  # in the journal: each shard's images, one JSON line each
LISTING = f"{PIECES}/listing.jsonl"  # the scan's: every file SRC names, one JSON line each
PROBE_RUN = 4096  # files a scan task looks at, at most

# (shard name, byte range of its lines in the work list)
ShardTask = tuple[str, int, int]
# (answers file in OUT, byte range of its lines in the listing)
ProbeTask = tuple[str, int, int]


def write_listing(out: Folder, items: Sequence[Item], tasks: int = 256) -> list[ProbeTask]:
    """Write the scan's listing into OUT (``LISTING``), in runs of consecutive lines, one
    scan task each: about ``tasks`` of them, each of at least 16 files and at most
    ``PROBE_RUN``."""
    per_task = min(PROBE_RUN, max(16, math.ceil(len(items) / tasks)))
    runs: list[ProbeTask] = []
    with out.open_write(LISTING) as f:
        offset = 0
        for n, item in enumerate(items):
            if n % per_task == 0:
                runs.append((f"{PIECES}/probed-{len(runs):06d}.jsonl", offset, offset))
            line = json_line(encode_item(absolute(item)))
            f.write(line)
            offset += len(line)
            runs[-1] = (runs[-1][0], runs[-1][1], offset)
    return runs


def probe_threads(items: Sequence[Item]) -> int:
    """Header reads from an object store wait on the network: many run at once there."""
    return 16 if items and storage.is_url(items[0].path) else 1


def read_answers(out: Folder, tasks: Iterable[ProbeTask]) -> Iterator[Probed]:
    """The scan tasks' answers, in listing order, read back from their files in OUT."""
    for task in tasks:
        with storage.open_read(out.at(task[0])) as answers:
            for line in answers:
                yield unportable(json.loads(line))


def recorded_results(
    journal: Journal, specs: list[ShardSpec], out: Folder, engine: str, resume: str
) -> list[ShardResult]:
    """Each shard's result, as its task recorded it in the journal; an OutputError naming
    the first missing one (``engine``: "the Beam pipeline", ...; ``resume``: how to resume)."""
    results = [journal.recorded(spec) for spec in specs]
    missing = [spec.name for spec, r in zip(specs, results, strict=True) if r is None]
    if missing:
        raise OutputError(
            f"{out}: {engine} ended without writing {len(missing)} shard(s)"
            f" ({missing[0]}, ...); run again with {resume}"
        )
    return [r for r in results if r is not None]


def write_work(out: Folder, journal: Journal, specs: list[ShardSpec]) -> list[ShardTask]:
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
                line = json_line([position, encode_item(absolute(item))])
                f.write(line)
                offset += len(line)
            tasks.append((spec.name, start, offset))
    return tasks


def read_work(task: ShardTask, work: str) -> Iterator[tuple[str, int, Item]]:
    name, start, stop = task
    with storage.open_read(storage.parse(work)) as f:
        f.seek(start)
        lines = f.read(stop - start).splitlines()
    for line in lines:
        position, item = json.loads(line)
        yield name, position, decode_item(item)


def lines_of(f: BinaryIO, size: int) -> Iterator[bytes]:
    """The lines in the next ``size`` bytes of ``f``, read one at a time."""
    while size > 0 and (line := f.readline()):
        size -= len(line)
        yield line


def json_line(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=True).encode() + b"\n"


def absolute(item: Item) -> Item:
    return replace(item, path=storage.absolute(item.path))


def probe_task(task: ProbeTask, listing: str, out: Folder, max_pixels: int, threads: int) -> str:
    """In a worker: look at the headers of one run of the listing; write the answers."""
    answers, start, stop = task
    with storage.open_read(storage.parse(listing)) as f, out.open_write(answers) as written:
        f.seek(start)
        items = (decode_item(json.loads(line)) for line in lines_of(f, stop - start))
        for probed in probe_items(items, max_pixels, threads):
            written.write(json_line(portable(probed)))
    return answers


def pack_task(
    task: tuple[str, int, Item], image_options: ImageOptions
) -> tuple[str, tuple[int, Item, Packed | Skipped]]:
    name, position, item = task
    return name, (position, item, pack_one(item, image_options))


def write_group(
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
