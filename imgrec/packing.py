"""Plan and run a pack: SRC folder -> shards + index files + manifest.

The plan (which image goes to which shard, in which order) is made before any byte is
written and depends only on the sorted file list and the options, never on how many
workers load the images. That is what makes the output byte-reproducible.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import math
import multiprocessing
import random
import signal
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from . import __version__, images, storage
from . import manifest as manifest_io
from .discover import Item, Walk, from_list, read_labels_file, walk
from .errors import InputError, OutputError
from .schema import Record, serialize
from .storage import Folder, Location
from .summary import Stats, merge_stats
from .tfrecord import ShardWriter, index_path_for

SHARD_SIZE = 128 * 2**20
FORMATS = ("encoded", "png", "jpeg", "raw")

# Called as progress(stage, done, total); stages are "scan" and "pack".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PackOptions:
    format: str = "encoded"
    quality: int = 95
    channels: str = "auto"
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    resize: tuple[int, int] | None = None  # (width, height)
    resize_mode: str = "stretch"
    max_side: int | None = None
    shards: int | None = None
    shard_size: int = SHARD_SIZE
    name: str = "data"
    seed: int = 0
    shuffle: bool = True
    on_error: str = "skip"  # skip | fail
    labels_file: str | None = None
    from_list: str | None = None  # a list of files (and labels) instead of walking SRC
    split: tuple[tuple[str, float], ...] | None = None  # ((name, ratio), ...)
    workers: int = 1  # does not change the output
    overwrite: bool = False  # does not change the output

    def image_options(self) -> images.Options:
        return images.Options(
            self.format,
            self.quality,
            self.channels,
            self.max_pixels,
            self.resize,
            self.resize_mode,
            self.max_side,
        )

    def recorded(self) -> dict[str, Any]:
        """The options that shape the output, as saved in the manifest."""
        d = asdict(self)
        del d["workers"], d["overwrite"]
        return d

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> PackOptions:
        """The options a manifest recorded (JSON lists back into tuples; unknown keys, from
        another imgrec version, left out)."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in recorded.items() if k in known}
        if d.get("resize") is not None:
            d["resize"] = tuple(d["resize"])
        if d.get("split") is not None:
            d["split"] = tuple((name, ratio) for name, ratio in d["split"])
        return cls(**d)


JOURNAL = ".imgrec-journal.json"  # shards finished by a run that has not ended yet
PLAN = ".imgrec-plan.json"  # that run's options and source files, to explain a refused resume


@dataclass
class Scan:
    """What a header-only look at SRC found: the images to pack and everything else."""

    found: Walk
    candidates: list[Item]
    estimate: dict[str, int]  # rough stored bytes per image (plans the shard count)
    dense: dict[str, int]  # decoded bytes per image, at the source's depth
    ignored: int
    skipped: list[dict[str, str]]


def _skipper(opts: PackOptions) -> Callable[[Item, str, list[dict[str, str]]], None]:
    def skip(item: Item, reason: str, into: list[dict[str, str]]) -> None:
        if opts.on_error == "fail":
            raise InputError(f"{reason} (stopped by --on-error fail)", str(item.path))
        into.append({"path": item.rel, "reason": reason})

    return skip


def scan(src: Location, out: Location, opts: PackOptions, note: Progress) -> Scan:
    labels = read_labels_file(Path(opts.labels_file)) if opts.labels_file else None
    if opts.from_list:
        found = from_list(src, opts.from_list, labels)
    else:
        found = walk(src, labels, exclude=out, progress=note)
    skip = _skipper(opts)
    result = Scan(found, [], {}, {}, found.ignored, [])
    for rel in found.missing:
        missing = str(images.SkipImage("missing"))
        skip(Item(storage.join(src, rel), rel, -1, ""), missing, result.skipped)
    for rel in found.broken_links:
        if Path(rel).suffix.lower() in images.IMAGE_EXTENSIONS:
            reason = str(images.SkipImage("broken-symlink"))
            skip(Item(storage.join(src, rel), rel, -1, ""), reason, result.skipped)
        else:
            result.ignored += 1
    # Header reads from an object store wait on the network: many run at once there.
    threads = 16 if storage.is_url(src) else 1
    probes = _probes(found.items, opts.max_pixels, threads)
    for n, (item, probed) in enumerate(zip(found.items, probes, strict=True), 1):
        note("scan", n, len(found.items))
        if isinstance(probed, images.NotAnImage):
            if Path(item.rel).suffix.lower() in images.IMAGE_EXTENSIONS:
                code = "empty" if _stat(item)[0] == 0 else "not-an-image"
                skip(item, str(images.SkipImage(code)), result.skipped)
            else:
                result.ignored += 1
            continue
        if isinstance(probed, images.SkipImage):
            skip(item, str(probed), result.skipped)
            continue
        width, height, per_pixel = probed
        result.candidates.append(item)
        result.dense[item.rel] = width * height * per_pixel
        result.estimate[item.rel] = _estimate(opts.format, item, width * height * per_pixel)
    if not result.candidates:
        raise InputError(
            f"no images to pack ({result.ignored} files ignored, {len(result.skipped)} skipped)",
            str(src),
        )
    return result


def _probes(
    items: list[Item], max_pixels: int, threads: int
) -> Iterator[tuple[int, int, int] | images.NotAnImage | images.SkipImage]:
    """``images.probe`` of each item, in order (the exception it raised, for a file that is
    not an image or is skipped), ``threads`` at a time."""

    def one(item: Item) -> tuple[int, int, int] | images.NotAnImage | images.SkipImage:
        try:
            return images.probe(item.path, max_pixels)
        except (images.NotAnImage, images.SkipImage) as e:
            return e

    if threads == 1:
        yield from map(one, items)
        return
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(items), 64 * threads):  # bounded: millions of items
            yield from pool.map(one, items[start : start + 64 * threads])


def _stat(item: Item) -> tuple[int, int]:
    """(size, mtime ns) of the item's file, from its listing when it came from one."""
    return item.stat if item.stat is not None else storage.stat(item.path)


def plan(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """What ``pack`` would do, without writing anything (``--dry-run``).

    The stored size is estimated from up to 24 images, evenly drawn, loaded with the real
    options; the shard plan is exactly the one ``pack`` would follow.
    """
    opts = options or PackOptions()
    _check_options(opts)
    src, out = storage.location(src), storage.location(out)
    found = scan(src, out, opts, progress or (lambda stage, done, total: None))
    parts = plan_parts(found.candidates, found.estimate, opts)
    step = max(1, len(found.candidates) // 24)
    sample = found.candidates[::step][:24]
    stored = basis = 0
    for item, result in load_in_order(replace(opts, workers=1), sample):
        if not isinstance(result, str):
            stored += len(result.data)
            basis += found.dense[item.rel]
    dense = sum(found.dense.values())
    labels: dict[str, int] = {}
    for item in found.candidates:
        key = item.text or "(unlabelled)"
        labels[key] = labels.get(key, 0) + 1
    return {
        "dry_run": True,
        "out": str(out),
        "images": len(found.candidates),
        "labels": {n: labels.get(n, 0) for n in found.found.labels} | labels,
        "ignored": found.ignored,
        "skipped": found.skipped,
        "format": opts.format,
        "estimated_bytes": round(dense * stored / basis) if basis else None,
        "dense_bytes": dense,
        "shards": [
            {"name": p.name, "split": p.split, "images": len(p.items), "shards": len(p.plan)}
            for p in parts
        ],
    }


def pack(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Pack the images under ``src`` into shards in ``out``; returns the manifest.

    ``resume`` continues an interrupted run into the same ``out``: shards it finished are
    kept, the rest are written, and the result is byte-identical to an uninterrupted run.
    """
    opts = options or PackOptions()
    _check_options(opts)
    for what, where in (("SRC", src), ("OUT", out)):
        if storage.is_url(where):
            raise InputError(
                f"{what} is a URL: URLs are read and written through Apache Beam;"
                " add --runner beam (or use a local path)",
                str(where),
            )
    src, out = Path(src), Path(out)
    note = progress or (lambda stage, done, total: None)
    folder = Folder(out)
    journal = _check_out(src, folder, opts.overwrite, resume)
    found = scan(src, out, opts, note)
    _prepare_out(folder, resuming=journal is not None)
    skip, skipped = _skipper(opts), found.skipped
    ignored, candidates, estimate = found.ignored, found.candidates, found.estimate
    parts = plan_parts(candidates, estimate, opts)
    journal = open_journal(folder, journal, opts, found.found.labels, candidates)
    done: dict[str, Any] = journal["done"]

    # Which shards are still to write: a finished one is kept only if it is intact.
    shard_names = [
        (part, index, f"{part.name}-{index:05d}-of-{len(part.plan):05d}.tfrecord")
        for part in parts
        for index in range(len(part.plan))
    ]
    kept = {name for _, _, name in shard_names if _finished(folder, done.get(name))}
    todo = [
        item
        for part, index, name in shard_names
        if name not in kept
        for item in part.items[slice(*part.plan[index])]
    ]

    jobs = [
        (out / name, part.split, part.items[slice(*part.plan[index])], opts.image_options())
        for part, index, name in shard_names
        if name not in kept
    ]
    try:
        if opts.workers > 1 and opts.on_error == "skip" and len(jobs) >= opts.workers:
            # A shard for every worker: each worker loads, encodes and writes whole shards,
            # so no image crosses between processes (for raw pixels that crossing costs
            # more than the second core gains).
            written = 0
            shards = _in_order(_write_shard_job, jobs, opts.workers, batch=1)
            with contextlib.closing(shards) as finished:
                for (path, _, items, _), result in zip(jobs, finished, strict=True):
                    done[path.name] = result
                    _write_json(folder, JOURNAL, journal)
                    written += len(items)
                    note("pack", written, len(todo))
        else:
            # Few shards: images are loaded and encoded in the workers, in batches, and
            # written here in plan order.
            tasks = [(item, opts.image_options()) for item in todo]
            with contextlib.closing(_in_order(_pack_one, tasks, opts.workers)) as loaded:
                results = _counted(loaded, lambda n: note("pack", n, len(todo)))
                for path, split, items, _ in jobs:
                    done[path.name] = _write_shard(path, split, items, results, skip)
                    _write_json(folder, JOURNAL, journal)
        manifest = _manifest(
            src, opts, found.found.labels, ignored, skipped, parts, shard_names, done
        )
        listed = {s["file"] for s in manifest["shards"]} | {s["index"] for s in manifest["shards"]}
        _remove_stale(folder, listed)
        manifest_io.write(folder, manifest)
    except OSError as e:
        folder.remove_incomplete()
        raise OutputError(
            f"{out}: cannot write ({e.strerror or e}); finished shards are kept,"
            " free some space (or fix the folder) and run again with --resume"
        ) from None
    except BaseException:
        folder.remove_incomplete()  # what stopped workers left behind (Ctrl-C, errors)
        raise
    close_journal(folder)
    return manifest


def open_journal(
    out: Folder,
    journal: dict[str, Any] | None,
    opts: PackOptions,
    labels: list[str],
    candidates: list[Item],
) -> dict[str, Any]:
    """The interrupted run's journal to continue (refused if the plan changed), or a new one.

    The journal holds only the plan's key and the finished shards: it is rewritten after
    every shard, so the file list that explains a refusal is written once, beside it."""
    key = _plan_key(opts, labels, candidates)
    if journal is not None:
        if journal.get("key") != key:
            raise InputError(_resume_mismatch(out, journal, opts, candidates), str(out))
        journal.setdefault("done", {})
        return journal
    _write_json(out, PLAN, _plan_summary(opts, candidates))
    return {"imgrec": __version__, "key": key, "done": {}}


def close_journal(out: Folder) -> None:
    """The run is complete (its manifest written): the journal has served."""
    for name in (JOURNAL, PLAN):
        out.delete(name)


def _write_shard_job(job: tuple[Path, str | None, list[Item], images.Options]) -> dict[str, Any]:
    """In a worker: load, encode and write one whole shard (skipped images are recorded)."""
    path, split, items, opts = job

    def record(item: Item, reason: str, into: list[dict[str, str]]) -> None:
        into.append({"path": item.rel, "reason": reason})

    results = (_pack_one((item, opts)) for item in items)
    return _write_shard(path, split, items, results, record)


def _write_shard(
    path: Path,
    split: str | None,
    items: list[Item],
    results: Iterator[Packed | str],
    skip: Callable[[Item, str, list[dict[str, str]]], None],
) -> dict[str, Any]:
    """Write one shard: ``items`` in plan order, each with its ``_pack_one`` result, the next
    one taken from ``results``. Returns what the journal and the manifest keep about the
    shard (``done[name]``). The local pack and the Beam pipeline (beam.py) both write
    shards with this."""
    shard_skipped: list[dict[str, str]] = []
    shard_stats = Stats()
    transcoded: list[dict[str, str]] = []
    with ShardWriter(path) as writer:
        # items first: zip stops at their end without taking a result of the next shard
        for item, result in zip(items, results, strict=False):
            if isinstance(result, str):
                skip(item, result, shard_skipped)
                continue
            writer.write(result.example)
            shard_stats.add(result.record, result.stored)
            if result.note:
                transcoded.append({"path": item.rel, "reason": result.note})
    info = writer.info
    entry: dict[str, Any] = {
        "file": path.name,
        "records": info.records,
        "bytes": info.bytes,
        "sha256": info.sha256,
        "index": index_path_for(path).name,
    }
    if split is not None:
        entry["split"] = split
    return {
        "entry": entry,
        "skipped": shard_skipped,
        "transcoded": transcoded,
        "stats": shard_stats.to_dict(),
    }


def _counted(
    results: Iterator[Packed | str], tick: Callable[[int], None]
) -> Iterator[Packed | str]:
    """``results``, calling ``tick(n)`` as the n-th is taken (for progress)."""
    for n, result in enumerate(results, 1):
        tick(n)
        yield result


def _manifest(
    src: Location,
    opts: PackOptions,
    labels: list[str],
    ignored: int,
    scan_skipped: list[dict[str, str]],
    parts: list[Part],
    shard_names: list[tuple[Part, int, str]],
    done: dict[str, Any],
) -> dict[str, Any]:
    """The manifest, from the per-shard results in shard order (the same whether the shards
    were written in one run or over several)."""
    stats = Stats()
    split_stats: dict[str, Stats] = {}
    skipped = list(scan_skipped)
    transcoded: list[dict[str, str]] = []
    shards = []
    for part, _, name in shard_names:
        result = done[name]
        shard_stats = Stats.from_dict(result["stats"])
        merge_stats(stats, shard_stats)
        if part.split is not None:
            merge_stats(split_stats.setdefault(part.split, Stats()), shard_stats)
        skipped.extend(result["skipped"])
        transcoded.extend(result["transcoded"])
        shards.append(result["entry"])
    manifest: dict[str, Any] = {
        "imgrec": __version__,
        "format_version": manifest_io.FORMAT_VERSION,
        "source": str(src),
        "options": opts.recorded(),
        "records": stats.records,
        "labels": labels,
        "shards": shards,
        "ignored": ignored,
        "skipped": skipped,
        "transcoded": transcoded,
        "stats": stats.to_dict(),
    }
    if opts.split:
        empty = Stats()
        manifest["splits"] = {
            name: {
                "ratio": ratio,
                "records": split_stats.get(name, empty).records,
                "labels": dict(split_stats.get(name, empty).labels),
            }
            for name, ratio in opts.split
        }
    return manifest


def _finished(out: Folder, result: dict[str, Any] | None) -> bool:
    """A shard an earlier run finished, still whole (size and sha256 as it recorded)."""
    if result is None:
        return False
    entry = result["entry"]
    if out.size(entry["index"]) is None or out.size(entry["file"]) != entry["bytes"]:
        return False
    return bool(out.sha256(entry["file"]) == entry["sha256"])


def _plan_summary(opts: PackOptions, candidates: list[Item]) -> dict[str, Any]:
    files = {}
    for item in candidates:
        files[item.rel] = list(_stat(item))
    return {"options": opts.recorded(), "files": files}


def _plan_key(opts: PackOptions, labels: list[str], candidates: list[Item]) -> str:
    """What must not change between an interrupted run and its --resume."""
    summary = _plan_summary(opts, candidates)
    text = json.dumps([__version__, labels, summary], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _resume_mismatch(
    out: Folder, journal: dict[str, Any], opts: PackOptions, candidates: list[Item]
) -> str:
    try:
        then = json.loads(out.read(PLAN))
    except (OSError, ValueError):
        then = journal.get("plan", {})
    now = _plan_summary(opts, candidates)
    then = json.loads(json.dumps(then))  # tuples -> lists, as stored
    now = json.loads(json.dumps(now))
    changed = sorted(
        k for k in now["options"] if then.get("options", {}).get(k) != now["options"][k]
    )
    if changed:
        return (
            "cannot resume: these options differ from the interrupted run's: "
            + ", ".join(f"{k} (was {then['options'].get(k)!r})" for k in changed)
            + "; use the same options, or --overwrite to start over"
        )
    old, new = then.get("files", {}), now["files"]
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    modified = sum(1 for k in new.keys() & old.keys() if new[k] != old[k])
    return (
        f"cannot resume: the source changed since the interrupted run ({added} added,"
        f" {removed} removed, {modified} modified); use --overwrite to start over"
    )


def _write_json(out: Folder, name: str, data: dict[str, Any]) -> None:
    out.write(name, json.dumps(data, ensure_ascii=True).encode())


@dataclass(frozen=True)
class Part:
    """One run of shards: ``{name}-00000-of-{n}.tfrecord`` ..., holding ``items`` in order."""

    name: str
    split: str | None
    items: list[Item]
    plan: list[tuple[int, int]]


def plan_parts(candidates: list[Item], estimate: dict[str, int], opts: PackOptions) -> list[Part]:
    """Which image goes to which split, in which order, in which shard: decided up front."""
    named: list[tuple[str, str | None, list[Item], float]]
    if opts.split:
        groups = assign_splits(candidates, opts.split, opts.seed)
        named = [(name, name, groups[name], ratio) for name, ratio in opts.split]
    else:
        named = [(opts.name, None, candidates, 1.0)]
    parts = []
    for name, split, items, ratio in named:
        if not items:
            continue
        if opts.shards is None:
            count = math.ceil(sum(estimate[i.rel] for i in items) / opts.shard_size)
        elif split is None:
            count = opts.shards
        else:  # --shards is the total: each split gets its share, at least one
            count = min(len(items), max(1, math.floor(opts.shards * ratio + 0.5)))
        ordered = list(items)
        if opts.shuffle:
            random.Random(f"{opts.seed}/{name}").shuffle(ordered)
        parts.append(Part(name, split, ordered, plan_shards(len(ordered), count)))
    return parts


def assign_splits(
    items: list[Item], splits: tuple[tuple[str, float], ...], seed: int
) -> dict[str, list[Item]]:
    """Stratified, stable split assignment.

    Within each class, images are ranked by sha256(seed, relative path) and cut at the
    rounded cumulative ratios, so every split gets its ratio of every class to within one
    image. An image's rank depends only on its own path: adding or removing images moves
    each cut by at most one place, so existing images keep their split except at most one
    per cut and class.
    """
    out: dict[str, list[Item]] = {name: [] for name, _ in splits}
    by_class: dict[int, list[Item]] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    for members in by_class.values():
        ranked = sorted(members, key=lambda it: _split_key(seed, it.rel))
        n, cum, start = len(ranked), 0.0, 0
        for name, ratio in splits:
            cum += ratio
            stop = min(n, math.floor(n * cum + 0.5))
            out[name].extend(ranked[start:stop])
            start = stop
    walk_order = {item.rel: i for i, item in enumerate(items)}
    return {name: sorted(group, key=lambda it: walk_order[it.rel]) for name, group in out.items()}


def _split_key(seed: int, rel: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{rel}".encode("utf-8", "surrogateescape")).digest()


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


def plan_shards(n: int, shards: int) -> list[tuple[int, int]]:
    """Balanced ``[start, stop)`` ranges: shard i holds items round(n*i/k) to round(n*(i+1)/k)."""
    if shards < 1:
        shards = 1
    if shards > n:
        raise InputError(f"--shards {shards} is more than the {n} images found; ask for fewer")
    bounds = [round(n * i / shards) for i in range(shards + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _estimate(fmt: str, item: Item, dense: int) -> int:
    """A rough stored size, only used to choose the number of shards."""
    if fmt == "raw":
        return dense
    if fmt == "encoded":
        return _stat(item)[0]
    return dense // 2 if fmt == "png" else dense // 8


def _check_options(opts: PackOptions) -> None:
    if opts.format not in FORMATS:
        raise InputError(f"unknown format {opts.format!r}; use one of {', '.join(FORMATS)}")
    if opts.channels not in ("auto", "1", "3", "4"):
        raise InputError(f"unknown channels {opts.channels!r}; use auto, 1, 3 or 4")
    if opts.on_error not in ("skip", "fail"):
        raise InputError(f"unknown --on-error {opts.on_error!r}; use skip or fail")
    if not 1 <= opts.quality <= 100:
        raise InputError("--quality must be from 1 to 100")
    if opts.resize_mode not in images.RESIZE_MODES:
        raise InputError(f"unknown resize mode {opts.resize_mode!r}; use {images.RESIZE_MODES}")
    if opts.resize is not None and opts.max_side is not None:
        raise InputError("give --resize or --max-side, not both")
    if opts.resize is not None and min(opts.resize) < 1 or (opts.max_side or 1) < 1:
        raise InputError("resize sizes must be at least 1 pixel")
    if opts.workers < 1:
        raise InputError("--workers must be at least 1")
    names = [opts.name] if not opts.split else [name for name, _ in opts.split]
    for name in names:
        if not name or "/" in name or name.startswith(".") or name == manifest_io.MANIFEST:
            raise InputError(f"{name!r} must be a plain file name prefix")
    if opts.split:
        if len(set(names)) != len(names):
            raise InputError("--split names must differ")
        total = sum(r for _, r in opts.split)
        if abs(total - 1) > 1e-6:
            raise InputError(f"--split ratios must add up to 1, not {total:g}")


def _check_out(src: Location, out: Folder, overwrite: bool, resume: bool) -> dict[str, Any] | None:
    """Refuse an unusable OUT before any work; returns the journal to resume from, if any.
    Changes nothing."""
    if isinstance(out.where, Path) and out.where.exists() and not out.where.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another OUT")
    if storage.same_place(out.where, src):
        raise OutputError(f"{out} is SRC itself; choose another OUT folder")
    if resume and overwrite:
        raise OutputError("--resume continues a run, --overwrite starts over: choose one")
    where = out.at(JOURNAL)
    if resume:
        if out.size(JOURNAL) is None:
            what = "a finished dataset" if out.size(manifest_io.MANIFEST) is not None else "no"
            raise OutputError(f"{out} holds {what} interrupted run to resume; drop --resume")
        try:
            journal: dict[str, Any] = json.loads(out.read(JOURNAL))
        except (OSError, ValueError) as e:
            raise OutputError(f"{where}: unreadable ({e}); use --overwrite") from None
        return journal
    if not overwrite and not out.is_empty():
        if out.size(JOURNAL) is not None:
            raise OutputError(
                f"{out} holds an interrupted pack; pass --resume to continue it,"
                " or --overwrite to start over"
            )
        raise OutputError(f"{out} is not empty; pass --overwrite to replace it")
    return None


def _prepare_out(out: Folder, resuming: bool) -> None:
    """Make OUT ready to write into (after _check_out passed and the scan found images)."""
    if not resuming:
        # The old manifest goes first: from here on the folder is not a complete dataset.
        for name in (manifest_io.MANIFEST, JOURNAL, PLAN):
            out.delete(name)
    if not isinstance(out.where, Path) or out.where.is_dir():
        out.remove_incomplete()
    if isinstance(out.where, Path):
        try:
            out.make()
        except OSError as e:
            raise OutputError(f"{out}: cannot create the output folder ({e.strerror})") from None


def _remove_stale(out: Folder, keep: set[str]) -> None:
    """Remove shards and index files of an earlier pack that this one did not rewrite."""
    for name in out.files():
        if name not in keep and (manifest_io.is_shard_name(name) or name.endswith(".tfrecord.idx")):
            out.delete(name)


LoadResult = images.Loaded | str  # a string is the reason the image was skipped


def _load_one(args: tuple[Location, images.Options]) -> LoadResult:
    path, opts = args
    try:
        return images.load(path, opts)
    except images.NotAnImage:
        return str(images.SkipImage("not-an-image"))
    except images.SkipImage as e:
        return str(e)
    except Exception as e:  # a bug must cost one image, not the whole run
        return str(images.SkipImage("failed", f"{type(e).__name__}: {e}"))


@dataclass(frozen=True)
class Packed:
    """One image ready for its shard, made in a worker: the serialized Example, and its
    fields (image bytes left out) for the statistics."""

    example: bytes
    record: Record
    stored: int  # bytes of the image payload
    note: str | None


def _pack_one(task: tuple[Item, images.Options]) -> Packed | str:
    item, opts = task
    result = _load_one((item.path, opts))
    if isinstance(result, str):
        return result
    rec = Record(
        result.data, result.format, result.height, result.width, result.channels,
        result.dtype, item.label, item.text, item.rel, result.sha256, result.orientation,
    )  # fmt: skip
    return Packed(serialize(rec), replace(rec, data=b""), len(result.data), result.note)


def _in_order(
    fn: Callable[[Any], Any], tasks: list[Any], workers: int, batch: int = 8
) -> Generator[Any]:
    """``fn(task)`` for each task, in order, computed by ``workers`` processes.

    Tasks travel in ``batch``es (fewer, larger messages between processes), and at most a few
    batches per worker are in flight: memory stays flat however many images there are, and
    a slow disk holds the workers back instead of filling memory.
    """
    if workers == 1 or len(tasks) < 2:
        yield from map(fn, tasks)
        return
    size = max(1, min(batch, len(tasks) // (workers * 4)))
    batches = [(fn, tasks[i : i + size]) for i in range(0, len(tasks), size)]
    # fork is fast and does not re-import the caller's script; but once TensorFlow (and its
    # thread pools) is loaded, a forked child can deadlock, so spawn is used then. Workers
    # ignore Ctrl-C: the main process handles it, and stops them.
    method = "spawn" if "tensorflow" in sys.modules else "fork"
    pool = multiprocessing.get_context(method).Pool(workers, _worker_signals)
    try:
        pending = iter(batches)
        window = collections.deque(
            pool.apply_async(_run_batch, (b,)) for b in itertools.islice(pending, workers * 3)
        )
        while window:
            results = window.popleft().get()
            for b in itertools.islice(pending, 1):
                window.append(pool.apply_async(_run_batch, (b,)))
            yield from results
    finally:
        pool.terminate()
        pool.join()


def _run_batch(batch: tuple[Callable[[Any], Any], list[Any]]) -> list[Any]:
    fn, tasks = batch
    return [fn(task) for task in tasks]


def _worker_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the CLI's SIGTERM handler; the pool stops workers with
    # SIGTERM, which must simply end them.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def load_in_order(opts: PackOptions, items: list[Item]) -> Iterator[tuple[Item, LoadResult]]:
    """``(item, loaded or skip reason)`` for each item, in order, loaded in worker processes."""
    tasks = [(item.path, opts.image_options()) for item in items]
    with contextlib.closing(_in_order(_load_one, tasks, opts.workers)) as results:
        yield from zip(items, results, strict=True)
