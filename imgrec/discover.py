"""Find the files to pack: a sorted walk of SRC with labels from first-level folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def walk(src: Path, labels: list[str] | None = None, exclude: Path | None = None) -> Walk:
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
    if labels is None:
        labels = folders
    else:
        unknown = [f for f in folders if f not in labels]
        if unknown:
            raise InputError(
                f"class folder(s) {', '.join(unknown)} are not in the --labels file;"
                " add them to it or move them out of SRC",
                str(src),
            )
    index = {name: i for i, name in enumerate(labels)}
    items = []
    for rel, path in files:
        if "/" in rel:
            text = rel.split("/", 1)[0]
            items.append(Item(path, rel, index[text], text))
        else:
            items.append(Item(path, rel, -1, ""))
    return Walk(items, labels, ignored, broken)


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
