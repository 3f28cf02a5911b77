"""Which shard files a user means (dataset folders, shard files, glob patterns; local or
URLs), and what their manifests say about the records in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core import storage
from ..core.errors import InputError
from ..core.storage import Folder, Location
from ..format.layout import JOURNAL, LOCK, PLAN, is_shard_name
from ..format.manifest import Manifest, ShardEntry, read


def _could_be_shard(name: str) -> bool:
    """What a glob may pick: shards of any naming (other tools' too), not the files imgrec
    keeps beside them (index files, the manifest, hidden and temporary files)."""
    return not (name.startswith(".") or name.endswith((".idx", ".json")))


Paths = str | Path | Sequence[str | Path]


def as_list(paths: Paths) -> list[str]:
    """One path (a str or Path) or several, as a list of strings."""
    return [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]


def open_dataset(p: str) -> tuple[Location, Manifest | None]:
    """Where the path, URL or glob ``p`` points, and its manifest when it is a dataset
    folder (or prefix)."""
    pattern = any(c in p for c in "*?[")
    where: Location = Path(p) if not storage.is_url(p) else p if pattern else storage.location(p)
    folder = storage.is_url(where) and not pattern or isinstance(where, Path) and where.is_dir()
    return where, read(where) if folder else None


def unfinished(where: Location) -> str | None:
    """Why the folder ``where`` (which has no manifest) is an unfinished dataset, if it is
    one: a pack is writing it, or one was stopped before its manifest was written."""
    folder = Folder(where)
    if folder.size(f"{JOURNAL}/{PLAN}") is None and folder.size(LOCK) is None:
        return None
    return (
        "an unfinished dataset: an imgrec pack is writing it, or was stopped before writing"
        " manifest.json; its shards may mix two runs. Finish it with imgrec pack --resume"
        " (or wait for the running pack)"
    )


def resolve(paths: Paths, split: str | None = None) -> list[Location]:
    """Shard files meant by dataset folders, shard files, or glob patterns (in order).

    ``split`` picks one split's shards from dataset folders packed with ``--split``: none
    for a split the manifests list with 0 records; a split they do not list is refused.
    """
    files: list[Location] = []
    for p in as_list(paths):
        pattern = any(c in p for c in "*?[")
        where, m = open_dataset(p)
        if split is not None:
            splits = (m.splits or {}) if m else {}
            if m is None or split not in splits:
                known = ", ".join(splits)
                raise InputError(
                    f"no split {split!r} here"
                    + (f" (this dataset has {known})" if known else " (not packed with --split)"),
                    p,
                )
            files.extend(storage.join(where, s.file) for s in m.shards if s.split == split)
        elif m is not None:
            files.extend(storage.join(where, s.file) for s in m.shards)
        elif not pattern and (reason := unfinished(where)) is not None:
            raise InputError(reason, p)
        elif isinstance(where, Path) and where.is_dir():
            found = sorted(q for q in where.iterdir() if is_shard_name(q.name) and q.is_file())
            if not found:
                raise InputError("no manifest.json and no *.tfrecord files here", p)
            files.extend(found)
        elif isinstance(where, Path) and where.is_file() or not pattern and storage.size(where):
            files.append(where)
        else:
            matches = storage.expand(p)
            if not matches:
                raise InputError("no such file, folder or matching shards", p)
            shards = [m for m in matches if _could_be_shard(storage.name_of(m))]
            if not shards:
                raise InputError("the pattern matches no shard files", p)
            files.extend(shards)
    if not files and split is None:
        raise InputError("no shards given")
    return files  # with split: none when the split is empty (pack writes it no shard)


def entries(files: Sequence[Location]) -> list[tuple[Manifest, ShardEntry]] | None:
    """(manifest, shard entry) for each file, or None if any file has no manifest listing it."""
    manifests: dict[str, Manifest | None] = {}
    found = []
    for f in files:
        parent = storage.parent_of(f)
        if str(parent) not in manifests:
            manifests[str(parent)] = read(parent)
        m = manifests[str(parent)]
        name = storage.name_of(f)
        entry = next((s for s in m.shards if s.file == name), None) if m else None
        if m is None or entry is None or m.stats is None:
            return None
        found.append((m, entry))
    return found


@dataclass(frozen=True)
class Known:
    """What the manifests beside a set of shards say about their records."""

    records: int
    dtypes: frozenset[str]
    formats: frozenset[str]
    channels: frozenset[int]
    oriented: bool  # some record may carry an EXIF orientation to apply
    height: tuple[int, int] | None  # (min, max); None when there are no records
    width: tuple[int, int] | None
    # Packed with annotations: the per-image columns (name -> type); None: without
    columns: dict[str, str] | None = None
    masks: bool = False  # every record carries a semantic mask
    # The classes that name keypoints (id -> names): the records carry K per object
    keypoints: dict[int, list[str]] | None = None
    instance_masks: bool = False  # every object has a mask (image/object/mask)


def describe(files: Sequence[Location]) -> Known | None:
    """What the manifests say about these shards' datasets; None if any shard has no
    manifest listing it (then nothing is known)."""
    listed = entries(files)
    if listed is None:
        return None
    datasets = list({id(m): m for m, _ in listed}.values())
    stats = [m.stats for m in datasets if m.stats is not None]
    sized = [s for s in stats if s.records]

    def span(key: str) -> tuple[int, int] | None:
        if not sized:
            return None
        return min(getattr(s, key)[0] for s in sized), max(getattr(s, key)[1] for s in sized)

    annotated = [m.annotations for m in datasets]
    columns = None
    if any(a is not None for a in annotated):
        kinds = {(str(a.columns), a.masks, str(a.keypoints), a.instance_masks)
                 for a in annotated if a is not None}  # fmt: skip
        if any(a is None for a in annotated) or len(kinds) > 1:
            where = ", ".join(sorted({str(f) for f in files}))[:200]
            raise InputError(
                "these shards come from datasets packed with different annotations (or some"
                " without): read them one dataset at a time",
                where,
            )
        columns = dict(annotated[0].columns) if annotated[0] is not None else None
    return Known(
        columns=columns,
        masks=all(a is not None and a.masks for a in annotated) and bool(annotated),
        keypoints=annotated[0].keypoints if annotated and annotated[0] is not None else None,
        instance_masks=all(a is not None and a.instance_masks for a in annotated)
        and bool(annotated),
        records=sum(e.records for _, e in listed),
        dtypes=frozenset(d for s in stats for d in s.dtypes),
        formats=frozenset(k for s in stats for k in s.formats),
        channels=frozenset(int(c) for s in stats for c in s.channels),
        oriented=any(s.oriented for s in stats),
        height=span("height"),
        width=span("width"),
    )
