"""Plan and run a pack: SRC folder -> shards + index files + manifest.

The plan (which image goes to which shard, in which order) is made before any byte is
written and depends only on the sorted file list and the options, never on how many
workers load the images. That is what makes the output byte-reproducible.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__, images
from . import manifest as manifest_io
from .discover import Item, read_labels_file, walk
from .errors import InputError, OutputError
from .schema import Record, serialize
from .summary import Stats
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


def pack(
    src: str | Path,
    out: str | Path,
    options: PackOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Pack the images under ``src`` into shards in ``out``; returns the manifest."""
    opts = options or PackOptions()
    _check_options(opts)
    src, out = Path(src), Path(out)
    note = progress or (lambda stage, done, total: None)
    labels = read_labels_file(Path(opts.labels_file)) if opts.labels_file else None
    found = walk(src, labels, exclude=out)
    _prepare_out(src, out, opts.overwrite)

    ignored = found.ignored
    skipped: list[dict[str, str]] = []

    def skip(item: Item, reason: str) -> None:
        if opts.on_error == "fail":
            raise InputError(f"{reason} (stopped by --on-error fail)", str(item.path))
        skipped.append({"path": item.rel, "reason": reason})

    for rel in found.broken_links:
        if Path(rel).suffix.lower() in images.IMAGE_EXTENSIONS:
            skip(Item(src / rel, rel, -1, ""), str(images.SkipImage("broken-symlink")))
        else:
            ignored += 1

    # Scan: header-only look at each file, to tell images from the rest and size the plan.
    candidates: list[Item] = []
    estimate: dict[str, int] = {}
    for n, item in enumerate(found.items, 1):
        note("scan", n, len(found.items))
        try:
            width, height, per_pixel = images.probe(item.path, opts.max_pixels)
        except images.NotAnImage:
            if item.path.suffix.lower() in images.IMAGE_EXTENSIONS:
                empty = item.path.stat().st_size == 0
                skip(item, str(images.SkipImage("empty" if empty else "not-an-image")))
            else:
                ignored += 1
            continue
        except images.SkipImage as e:
            skip(item, str(e))
            continue
        candidates.append(item)
        estimate[item.rel] = _estimate(opts.format, item.path, width * height * per_pixel)
    if not candidates:
        raise InputError(
            f"no images to pack ({ignored} files ignored, {len(skipped)} skipped)", str(src)
        )
    parts = plan_parts(candidates, estimate, opts)

    stats = Stats()
    split_stats = {part.split: Stats() for part in parts if part.split is not None}
    transcoded: list[dict[str, str]] = []
    shards: list[dict[str, Any]] = []
    written = 0
    everything = [item for part in parts for item in part.items]
    with _loader(opts, everything) as results:
        for part in parts:
            for index, (start, stop) in enumerate(part.plan):
                path = out / f"{part.name}-{index:05d}-of-{len(part.plan):05d}.tfrecord"
                with ShardWriter(path) as writer:
                    for item in part.items[start:stop]:
                        result = next(results)
                        written += 1
                        note("pack", written, len(everything))
                        if isinstance(result, str):
                            skip(item, result)
                            continue
                        rec = Record(
                            result.data, result.format, result.height, result.width,
                            result.channels, result.dtype, item.label, item.text, item.rel,
                            result.sha256, result.orientation,
                        )  # fmt: skip
                        writer.write(serialize(rec))
                        stats.add(rec)
                        if part.split is not None:
                            split_stats[part.split].add(rec)
                        if result.note:
                            transcoded.append({"path": item.rel, "reason": result.note})
                info = writer.info
                entry = {
                    "file": path.name,
                    "records": info.records,
                    "bytes": info.bytes,
                    "sha256": info.sha256,
                    "index": index_path_for(path).name,
                }
                if part.split is not None:
                    entry["split"] = part.split
                shards.append(entry)

    manifest = {
        "imgrec": __version__,
        "format_version": manifest_io.FORMAT_VERSION,
        "source": str(src),
        "options": opts.recorded(),
        "records": stats.records,
        "labels": found.labels,
        "shards": shards,
        "ignored": ignored,
        "skipped": skipped,
        "transcoded": transcoded,
        "stats": stats.to_dict(),
    }
    if opts.split:
        manifest["splits"] = {
            name: {
                "ratio": ratio,
                "records": split_stats[name].records if name in split_stats else 0,
                "labels": dict(split_stats[name].labels) if name in split_stats else {},
            }
            for name, ratio in opts.split
        }
    _remove_stale(out, {s["file"] for s in shards} | {s["index"] for s in shards})
    manifest_io.write(out, manifest)
    return manifest


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


def _estimate(fmt: str, path: Path, dense: int) -> int:
    """A rough stored size, only used to choose the number of shards."""
    if fmt == "raw":
        return dense
    if fmt == "encoded":
        return path.stat().st_size
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


def _prepare_out(src: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another OUT")
    if out.resolve() == src.resolve():
        raise OutputError(f"{out} is SRC itself; choose another OUT folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"{out} is not empty; pass --overwrite to replace it")
        # The old manifest goes first: from here on the folder is not a complete dataset.
        with contextlib.suppress(FileNotFoundError):
            (out / manifest_io.MANIFEST).unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the output folder ({e.strerror})") from None


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove shards and index files of an earlier pack that this one did not rewrite."""
    for p in out.iterdir():
        name = p.name
        if (
            name not in keep
            and p.is_file()
            and (manifest_io.is_shard_name(name) or name.endswith(".tfrecord.idx"))
        ):
            p.unlink()


LoadResult = images.Loaded | str  # a string is the reason the image was skipped


def _load_one(args: tuple[Path, images.Options]) -> LoadResult:
    path, opts = args
    try:
        return images.load(path, opts)
    except images.NotAnImage:
        return str(images.SkipImage("not-an-image"))
    except images.SkipImage as e:
        return str(e)
    except Exception as e:  # a bug must cost one image, not the whole run
        return str(images.SkipImage("failed", f"{type(e).__name__}: {e}"))


@contextlib.contextmanager
def _loader(opts: PackOptions, items: list[Item]) -> Iterator[Iterator[LoadResult]]:
    """Load items in order, in ``opts.workers`` processes. The order never depends on timing."""
    tasks = [(item.path, opts.image_options()) for item in items]
    if opts.workers == 1 or len(items) < 2:
        yield map(_load_one, tasks)
        return
    # spawn, not fork: the caller may have TensorFlow's threads running. Workers ignore
    # Ctrl-C: the main process handles it, and stops them.
    pool = multiprocessing.get_context("spawn").Pool(opts.workers, _ignore_sigint)
    try:
        yield pool.imap(_load_one, tasks, chunksize=4)
    finally:
        pool.terminate()
        pool.join()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def load_in_order(opts: PackOptions, items: list[Item]) -> Iterator[tuple[Item, LoadResult]]:
    """``(item, loaded or skip reason)`` for each item, in order, loaded in worker processes."""
    with _loader(opts, items) as results:
        yield from zip(items, results, strict=True)
