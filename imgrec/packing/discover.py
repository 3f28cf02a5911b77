"""Find the files to pack: a sorted walk of SRC with labels from first-level folders."""

from __future__ import annotations

import functools
import os
import posixpath
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import spool, storage
from ..core.errors import InputError
from ..core.spool import MEMORY, Store
from ..core.storage import Location
from ..format.manifest import AnnotationInfo
from .annotations import Annotated
from .tree import LocalTree, too_long


@dataclass(frozen=True)
class Ref:
    """Where an image lies inside another tool's dataset file (``imgrec convert``)."""

    kind: str  # recordio | lmdb | tfrecord
    offset: int = 0  # of the record in the file (recordio, tfrecord)
    key: bytes = b""  # of the record (lmdb)
    fields: tuple[str, ...] = ()  # the file holding it; tfrecord: also the image's keys
    labels: tuple[float, ...] = ()  # a multi-label record's labels


@dataclass(frozen=True)
class Item:
    path: Location  # the image file; or, with ref, the file (or LMDB folder) holding it
    rel: str  # relative to SRC, "/"-separated: stored as image/filename
    label: int  # -1 for files directly in SRC
    text: str
    stat: tuple[int, int] | None = None  # (size, mtime ns) when a listing gave them
    ref: Ref | None = None
    # In a dataset packed with annotations, every item's (none: no objects, no fields)
    annotated: Annotated | None = None


def encode_item(item: Item) -> list[Any]:
    """A JSON-able form of an item (``decode_item`` reads it back)."""
    data = [str(item.path), item.rel, item.label, item.text, item.stat]
    ref = item.ref
    if ref is not None or item.annotated is not None:
        data.append(
            None
            if ref is None
            else [ref.kind, ref.offset, ref.key.hex(), list(ref.fields), list(ref.labels)]
        )
    if item.annotated is not None:
        data.append(item.annotated.to_json())
    return data


def decode_item(data: list[Any]) -> Item:
    path, rel, label, text, st, *more = data
    ref = None
    if more and more[0] is not None:
        kind, offset, key, fields, labels = more[0]
        ref = Ref(kind, offset, bytes.fromhex(key), tuple(fields), tuple(labels))
    annotated = Annotated.from_json(more[1]) if len(more) > 1 else None
    stat = tuple(st) if st is not None else None
    return Item(storage.parse(path), rel, label, text, stat, ref, annotated)


@dataclass
class Walk:
    items: Sequence[Item]  # a list; on disk for listings too long to hold (``spool``)
    labels: list[str]
    ignored: int  # hidden entries, special files, unreadable folders, folders seen twice
    broken_links: list[str]  # relative paths of symlinks to nothing
    missing: list[str] = field(default_factory=list)  # listed by --from-list, not found
    too_long: list[str] = field(default_factory=list)  # paths over PATH_MAX: unreadable
    annotations: AnnotationInfo | None = None  # packed with annotations: what of them


def read_labels_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the labels file ({e})", str(path)) from None
    names = [line.strip() for line in lines if line.strip()]
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)  # count(): quadratic
    if dupes:
        raise InputError(f"label names listed twice: {', '.join(dupes)}", str(path))
    if not names:
        raise InputError("the labels file lists no names", str(path))
    return names


def walk(
    src: Location,
    labels: list[str] | None = None,
    exclude: Location | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    store: Store = MEMORY,
) -> Walk:
    """Every regular file under ``src`` in sorted order, labelled by its first-level folder.
    ``store`` keeps the items (in memory, or on disk: an object-store listing then streams).

    Symlinked folders are followed once (a folder reached twice, as in a loop, is walked
    where it comes first in path order). ``exclude`` (the output folder, when it sits inside
    SRC) is left out. A local walk streams into ``store`` too.
    """
    if isinstance(src, str):
        return _walk_listing(src, labels, exclude, store)
    if not src.is_dir():
        raise InputError("not a folder (SRC must be a folder of images)", str(src))
    tree = LocalTree(src, exclude if isinstance(exclude, Path) else None, progress)
    found = _labelled(src, tree.files(), tree.label_folders(), labels, 0, [], store)
    found.ignored, found.broken_links, found.too_long = tree.ignored, tree.broken, tree.too_long
    return found


def _labelled(
    src: Location,
    files: Iterable[tuple[str, Location, tuple[int, int] | None]],
    folders: list[str],
    labels: list[str] | None,
    ignored: int,
    broken: list[str],
    store: Store = MEMORY,
) -> Walk:
    """The walk's result from its sorted files, labelled by their first-level folders."""
    labels = _label_order(folders, labels, "class folder(s)", str(src))
    index = {name: i for i, name in enumerate(labels)}
    items = store.values(encode_item, decode_item)
    for rel, path, st in files:
        if "/" in rel:
            text = rel.split("/", 1)[0]
            spool.append(items, Item(path, rel, index[text], text, st))
        else:
            spool.append(items, Item(path, rel, -1, "", st))
    return Walk(items, labels, ignored, broken)


def _walk_listing(
    src: str, labels: list[str] | None, exclude: Location | None, store: Store = MEMORY
) -> Walk:
    """``walk`` for an object-store prefix, from one listing, by the same rules: hidden
    entries are ignored (a hidden folder counts once, as a walk does not enter it), OUT is
    left out, folder markers ("name/" keys) make first-level folders seen even when empty.
    The listing streams through ``store``'s sort: on disk, nothing is held per object."""
    out = f"{exclude}/"[len(src) + 1 :] if str(exclude).startswith(src + "/") else None
    hidden: set[str] = set()
    folders: set[str] = set()
    listed = 0

    def files() -> Iterator[tuple[str, tuple[int, int] | None]]:
        nonlocal listed
        for rel, st in storage.iter_tree(src):
            listed += 1
            if out is not None and rel.startswith(out):
                continue
            parts = rel.split("/")
            dot = next((i for i, p in enumerate(parts) if p.startswith(".")), None)
            if dot is not None:
                hidden.add("/".join(parts[: dot + 1]))
                continue
            if len(parts) > 1:
                folders.add(parts[0])
            if not rel.endswith("/"):
                yield rel, st

    def key(f: tuple[str, tuple[int, int] | None]) -> list[str]:
        return f[0].split("/")  # path order, component by component

    if isinstance(store, spool.Disk):
        ordered: Iterable[tuple[str, tuple[int, int] | None]] = store.sort(
            files(), key, list, lambda data: (data[0], tuple(data[1]))
        )
    else:
        ordered = sorted(files(), key=key)
    if not listed:
        raise InputError("nothing found under this prefix (SRC must hold images)", src)
    return _labelled(
        src,
        ((rel, f"{src}/{rel}", st) for rel, st in ordered),
        sorted(folders),
        labels,
        len(hidden),
        [],
        store,
    )


def _label_order(found: list[str], labels: list[str] | None, what: str, where: str) -> list[str]:
    """Label names in index order: sorted as found, or as a --labels file fixes them (which
    must then name every one found)."""
    if labels is None:
        return found
    listed = set(labels)  # "in labels" was quadratic in the classes
    unknown = [name for name in found if name not in listed]
    if unknown:
        raise InputError(
            f"{what} {', '.join(unknown)} are not in the --labels file; add them to it",
            where,
        )
    return labels


def read_list(path: str) -> list[tuple[str, str | None]]:
    """``(path, label or None)`` rows of a --from-list file: one path per line, or CSV
    (``.csv``) with columns path[,label] and an optional ``path,label`` header.
    ``-`` reads standard input (as plain lines, or CSV when a line has a comma and the
    first row is a ``path,label`` header)."""
    import csv
    import io
    import sys

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the list ({e})", path) from None
    lines = text.splitlines()
    header = [c.strip().lower() for c in lines[0].split(",")] if lines else []
    as_csv = path.lower().endswith(".csv") or header[:1] == ["path"]
    rows: list[tuple[str, str | None]] = []
    if as_csv:
        for n, row in enumerate(csv.reader(io.StringIO(text))):
            if not row or not row[0].strip():
                continue
            if n == 0 and [c.strip().lower() for c in row][:1] == ["path"]:
                continue
            label = row[1].strip() if len(row) > 1 and row[1].strip() else None
            rows.append((row[0].strip(), label))
    else:
        rows = [(line.strip(), None) for line in lines if line.strip()]
    if not rows:
        raise InputError("the list names no files", path)
    return rows


def from_list(src: Location, list_path: str, labels: list[str] | None = None) -> Walk:
    """The files a --from-list names, labelled by its label column or else by their first
    folder under SRC, in the same sorted order a walk gives. Paths are relative to SRC
    (absolute ones, or URLs when SRC is a URL, must lie inside it)."""
    if isinstance(src, str):
        listed = dict(storage.iter_tree(src))  # one listing, not a request per file
        to_rel = functools.partial(_url_rel, src)

        def found(rel: str) -> tuple[bool, tuple[int, int] | None]:
            return rel in listed and not rel.endswith("/"), listed.get(rel)

    else:
        if not src.is_dir():
            raise InputError("not a folder (SRC must be a folder of images)", str(src))
        to_rel = functools.partial(_local_rel, src, src.resolve())

        def found(rel: str) -> tuple[bool, tuple[int, int] | None]:
            return (src / rel).is_file(), None

    entries: dict[str, str | None] = {}
    duplicates = 0
    for raw, label in read_list(list_path):
        rel = to_rel(raw)
        if rel is None:
            raise InputError(f"{raw!r} is outside SRC ({src}); list paths under SRC", list_path)
        if rel in entries:
            duplicates += 1
            continue
        entries[rel] = label
    texts = {
        rel: (label if label is not None else (rel.split("/", 1)[0] if "/" in rel else ""))
        for rel, label in entries.items()
    }
    labels = _label_order(sorted({t for t in texts.values() if t}), labels, "label(s)", list_path)
    index = {name: i for i, name in enumerate(labels)}
    items, missing, deep = [], [], []
    for rel in sorted(entries, key=lambda r: r.split("/")):
        if isinstance(src, Path) and too_long(src / rel):
            deep.append(rel)  # is_file would fail on it: the system cannot take the name
            continue
        exists, st = found(rel)
        if not exists:
            missing.append(rel)
            continue
        text = texts[rel]
        items.append(Item(storage.join(src, rel), rel, index[text] if text else -1, text, st))
    return Walk(items, labels, duplicates, [], missing, deep)


def _local_rel(src: Path, root: Path, raw: str) -> str | None:
    path = Path(raw) if Path(raw).is_absolute() else src / raw
    try:
        return Path(os.path.normpath(path.absolute())).relative_to(root).as_posix()
    except ValueError:
        return None


def _url_rel(src: str, raw: str) -> str | None:
    if storage.is_url(raw):
        if not raw.startswith(src + "/"):
            return None
        raw = raw[len(src) + 1 :]
    rel = posixpath.normpath(raw)
    return None if rel == "." or rel.startswith(("../", "/")) or rel == ".." else rel
