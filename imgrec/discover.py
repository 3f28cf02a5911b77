"""Find the files to pack: a sorted walk of SRC with labels from first-level folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Item:
    path: Path
    rel: str  # relative to SRC, "/"-separated: stored as image/filename
    label: int  # -1 for files directly in SRC
    text: str


@dataclass
class Walk:
    items: list[Item]
    labels: list[str]
    ignored: int  # hidden entries, special files, unreadable folders, folders seen twice
    broken_links: list[str]  # relative paths of symlinks to nothing
    missing: list[str] = field(default_factory=list)  # listed by --from-list, not found


def read_labels_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the labels file ({e})", str(path)) from None
    names = [line.strip() for line in lines if line.strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"label names listed twice: {', '.join(dupes)}", str(path))
    if not names:
        raise InputError("the labels file lists no names", str(path))
    return names


def walk(
    src: Path,
    labels: list[str] | None = None,
    exclude: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Walk:
    """Every regular file under ``src`` in sorted order, labelled by its first-level folder.

    Symlinked folders are followed once (a folder reached twice, as in a loop, is not walked
    again). ``exclude`` (the output folder, when it sits inside SRC) is left out.
    """
    if not src.is_dir():
        raise InputError("not a folder (SRC must be a folder of images)", str(src))
    files: list[tuple[str, Path]] = []
    broken: list[str] = []
    ignored = 0
    seen: set[tuple[int, int]] = set()
    excluded = exclude.resolve() if exclude is not None else None

    # An explicit stack, not recursion: very deep trees must not hit Python's recursion limit.
    stack: list[tuple[Path, str]] = [(src, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:  # a symlink loop or a folder linked twice
                ignored += 1
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            ignored += 1
            continue
        subfolders = []
        for e in entries:
            path, child = Path(e.path), f"{rel}{e.name}"
            if e.name.startswith("."):
                ignored += 1
            elif _is_dir(e):
                if excluded is None or path.resolve() != excluded:
                    subfolders.append((path, child + "/"))
            elif _is_file(e):
                files.append((child, path))
                if progress is not None:
                    progress("walk", len(files), 0)
            elif e.is_symlink():
                broken.append(child)
            else:
                ignored += 1  # socket, fifo, device
        stack.extend(subfolders)
    files.sort(key=lambda f: f[0].split("/"))  # path order, component by component
    folders = sorted(
        e.name
        for e in os.scandir(src)
        if not e.name.startswith(".")
        and _is_dir(e)
        and (excluded is None or Path(e.path).resolve() != excluded)
    )
    labels = _label_order(folders, labels, "class folder(s)", str(src))
    index = {name: i for i, name in enumerate(labels)}
    items = []
    for rel, path in files:
        if "/" in rel:
            text = rel.split("/", 1)[0]
            items.append(Item(path, rel, index[text], text))
        else:
            items.append(Item(path, rel, -1, ""))
    return Walk(items, labels, ignored, broken)


def _label_order(found: list[str], labels: list[str] | None, what: str, where: str) -> list[str]:
    """Label names in index order: sorted as found, or as a --labels file fixes them (which
    must then name every one found)."""
    if labels is None:
        return found
    unknown = [name for name in found if name not in labels]
    if unknown:
        raise InputError(
            f"{what} {', '.join(unknown)} are not in the --labels file; add them to it",
            where,
        )
    return labels


def _is_dir(e: os.DirEntry[str]) -> bool:
    try:
        return e.is_dir()
    except OSError:
        return False


def _is_file(e: os.DirEntry[str]) -> bool:
    try:
        return e.is_file()
    except OSError:
        return False


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


def from_list(src: Path, list_path: str, labels: list[str] | None = None) -> Walk:
    """The files a --from-list names, labelled by its label column or else by their first
    folder under SRC, in the same sorted order a walk gives. Paths are relative to SRC
    (absolute ones must lie inside it)."""
    if not src.is_dir():
        raise InputError("not a folder (SRC must be a folder of images)", str(src))
    root = src.resolve()
    entries: dict[str, tuple[Path, str | None]] = {}
    duplicates = 0
    for raw, label in read_list(list_path):
        path = Path(raw) if Path(raw).is_absolute() else src / raw
        try:
            rel = Path(os.path.normpath(path.absolute())).relative_to(root).as_posix()
        except ValueError:
            raise InputError(
                f"{raw!r} is outside SRC ({src}); list paths under SRC", list_path
            ) from None
        if rel in entries:
            duplicates += 1
            continue
        entries[rel] = (src / rel, label)
    texts = {
        rel: (label if label is not None else (rel.split("/", 1)[0] if "/" in rel else ""))
        for rel, (_, label) in entries.items()
    }
    labels = _label_order(sorted({t for t in texts.values() if t}), labels, "label(s)", list_path)
    index = {name: i for i, name in enumerate(labels)}
    items, missing = [], []
    for rel in sorted(entries, key=lambda r: r.split("/")):
        path, _ = entries[rel]
        if not path.is_file():
            missing.append(rel)
            continue
        text = texts[rel]
        items.append(Item(path, rel, index[text] if text else -1, text))
    return Walk(items, labels, duplicates, [], missing)
