"""Scan: which files under SRC are images to pack, which are skipped (and why), which are
ignored; a header-only look at each image for the shard plan's size estimate."""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core import spool, storage
from ..core.errors import InputError
from ..core.progress import Progress
from ..core.spool import MEMORY, Store
from ..core.storage import Location
from ..format.manifest import Note
from ..format.options import PackOptions
from ..images import loading
from . import converters, payloads
from .annotations import join
from .discover import Item, Walk, decode_item, encode_item, from_list, read_labels_file, walk
from .payloads import Probed
from .tree import too_long_reason

File = tuple[str, int, int]  # a file's relative path, size and time (ns)


def _file(data: File) -> File:
    return data


@dataclass
class Scan:
    """What a header-only look at SRC found: the images to pack and everything else."""

    walk: Walk
    candidates: Sequence[Item]  # a list; on disk for listings too long to hold (``spool``)
    estimate: Sequence[int]  # each candidate's rough stored bytes (plans the shard count)
    dense: Sequence[int]  # each candidate's decoded bytes, at the source's depth
    files: Sequence[File]  # each candidate's file as it was (what a --resume must find again)
    ignored: int
    skipped: list[Note]
    store: Store = MEMORY  # where the candidates are kept; the plan keeps its numbers there


def skip(opts: PackOptions, path: Location, note: Note, into: list[Note]) -> None:
    """Record a skipped file, or stop the run there with ``--on-error fail``."""
    if opts.on_error == "fail":
        raise InputError(f"{note.reason} (stopped by --on-error fail)", str(path))
    into.append(note)


def scan_source(
    src: Location, out: Location, opts: PackOptions, progress: Progress, store: Store = MEMORY
) -> Scan:
    """The listing of SRC, and a header-only look at each file it names. ``store`` keeps
    the listing and the candidates (in memory, or on disk)."""
    walk = listing(src, out, opts, progress, store)
    # Header reads from an object store wait on the network: many run at once there.
    threads = 16 if storage.is_url(src) else 1
    looked = zip(walk.items, probe_items(walk.items, opts.max_pixels, threads), strict=True)
    return classify(src, opts, walk, looked, progress, store)


def listing(
    src: Location, out: Location, opts: PackOptions, progress: Progress, store: Store = MEMORY
) -> Walk:
    """The files SRC names (a walk, a list file, or another tool's dataset), in order.
    ``store`` keeps a walk's items (on disk, an object-store listing streams)."""
    if opts.source_format != "folder":
        return converters.listing(src, opts)
    labels = read_labels_file(Path(opts.labels_file)) if opts.labels_file else None
    with join.opened(src, opts) as sources:
        if opts.from_list:
            found = from_list(src, opts.from_list, labels)
        else:
            found = walk(src, labels, exclude=out, progress=progress, store=store)
        return join.attach(found, sources, src, store)


def classify(
    src: Location,
    opts: PackOptions,
    found: Walk,
    looked: Iterable[tuple[Item, Probed]],
    progress: Progress,
    store: Store = MEMORY,
) -> Scan:
    """What the look at each file means (``looked``: each item of ``found``, in order, with
    ``loading.probe_file``'s answer for it, wherever it was computed): images to pack, skipped,
    ignored. ``store`` keeps the candidates (in memory, or on disk for listings too long to
    hold)."""
    candidates = store.values(encode_item, decode_item)
    estimate, dense = store.numbers(8), store.numbers(8)
    files = store.values(_file, _file)
    result = Scan(found, candidates, estimate, dense, files, found.ignored, [], store)
    for rel in found.missing:
        reason = str(loading.SkipImage("missing"))
        skip(opts, storage.join(src, rel), Note(rel, reason), result.skipped)
    for rel in found.broken_links:
        if Path(rel).suffix.lower() in loading.IMAGE_EXTENSIONS:
            reason = str(loading.SkipImage("broken-symlink"))
            skip(opts, storage.join(src, rel), Note(rel, reason), result.skipped)
        else:
            result.ignored += 1
    for rel in found.too_long:
        if Path(rel).suffix.lower() in loading.IMAGE_EXTENSIONS:
            path = storage.join(src, rel)
            skip(opts, path, Note(rel, too_long_reason(path)), result.skipped)
        else:
            result.ignored += 1
    n, total = 0, len(found.items)
    for n, (item, probed) in enumerate(looked, 1):
        progress("scan", n, total)
        if isinstance(probed, loading.NotAnImage):
            if Path(item.rel).suffix.lower() in loading.IMAGE_EXTENSIONS:
                code = "empty" if stat(item)[0] == 0 else "not-an-image"
                skip(opts, item.path, Note(item.rel, str(loading.SkipImage(code))), result.skipped)
            else:
                result.ignored += 1
            continue
        if isinstance(probed, loading.SkipImage):
            skip(opts, item.path, Note(item.rel, str(probed)), result.skipped)
            continue
        width, height, per_pixel = probed
        spool.append(candidates, item)
        spool.append(files, (item.rel, *stat(item)))
        dense.append(width * height * per_pixel)
        estimate.append(_estimate(opts.format, item, width * height * per_pixel))
    if n != total:
        raise ValueError(f"{n} answers for {total} files")  # a bug, not bad input
    if not result.candidates:
        raise InputError(
            f"no images to pack ({result.ignored} files ignored, {len(result.skipped)} skipped)",
            str(src),
        )
    return result


def probe_items(items: Iterable[Item], max_pixels: int, threads: int) -> Iterator[Probed]:
    """``loading.probe_file`` of each item, in order (the exception it raised, for a file that is
    not an image or is skipped), ``threads`` at a time."""

    def one(item: Item) -> Probed:
        try:
            return payloads.probe_item(item, max_pixels)
        except (loading.NotAnImage, loading.SkipImage) as e:
            return e

    if threads == 1:
        yield from map(one, items)
        return
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        it = iter(items)
        while batch := list(itertools.islice(it, 64 * threads)):  # bounded: millions of items
            yield from pool.map(one, batch)


def stat(item: Item) -> tuple[int, int]:
    """(size, mtime ns) of the item's file, from its listing when it came from one."""
    return item.stat if item.stat is not None else storage.stat(item.path)


def _estimate(fmt: str, item: Item, dense: int) -> int:
    """A rough stored size, only used to choose the number of shards."""
    if fmt == "raw":
        return dense
    if fmt == "encoded":
        return stat(item)[0]
    return dense // 2 if fmt == "png" else dense // 8
