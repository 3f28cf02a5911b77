"""The local walk of SRC: each folder's entries in name order, every folder once (by device
and inode), and what it leaves out; folders whose path is too long to open by name are
walked through file descriptors, so that the files in them are reported, not lost."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import InputError
from ..core.storage import Location

_DIR = os.O_RDONLY | os.O_DIRECTORY


def path_max(where: Path) -> int:
    """The longest path (in bytes, with its final NUL) the system opens by name."""
    try:
        return os.pathconf(where, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096  # Linux's


def too_long(path: Path) -> bool:
    """No call that takes ``path`` by name can reach the file (ENAMETOOLONG)."""
    return len(os.fsencode(path)) >= path_max(Path("/"))


def too_long_reason(path: Location) -> str:
    """The skip reason of an image whose path the system cannot take."""
    from ..images.loading import SkipImage

    size, limit = len(os.fsencode(str(path))), path_max(Path("/"))
    detail = (
        f"the path is {size} bytes, over the system's limit of {limit - 1} (PATH_MAX);"
        " move the folders holding it higher up, or shorten their names, and pack again"
    )
    return str(SkipImage("path-too-long", detail))


class LocalTree:
    """One local walk: the folders walked so far (by device and inode, so a symlink loop or
    a folder linked twice is walked once) and what was left out."""

    def __init__(
        self, src: Path, exclude: Path | None, progress: Callable[[str, int, int], None] | None
    ) -> None:
        self.src, self.progress = src, progress
        self.seen: set[tuple[int, int]] = set()
        self.ignored = 0  # hidden entries, unreadable or repeated folders, sockets, fifos
        self.broken: list[str] = []  # symlinks leading nowhere
        self.too_long: list[str] = []  # files whose path is over PATH_MAX: unreadable by name
        self.limit = path_max(src)
        # OUT, by device and inode: one stat per folder to compare, where resolving each
        # folder's path costs a stat per component (quadratic in a deep tree).
        self.excluded = _identity(exclude) if exclude is not None else None

    def is_out(self, path: Path) -> bool:
        return self.excluded is not None and _identity(path) == self.excluded

    def label_folders(self) -> list[str]:
        """SRC's first-level folders, sorted: the labels."""
        try:
            return sorted(
                e.name
                for e in os.scandir(self.src)
                if not e.name.startswith(".") and _is_dir(e) and not self.is_out(Path(e.path))
            )
        except OSError as e:
            raise InputError(f"cannot read this folder ({e.strerror}); check its permissions",
                             str(self.src)) from None  # fmt: skip

    def entries(self, folder: Path, rel: str) -> Iterator[os.DirEntry[str]] | None:
        """The folder's entries sorted by name; None if it was walked already, cannot be
        read, or its path is too long to open (then its files are listed in ``too_long``)."""
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in self.seen:
                self.ignored += 1
                return None
            self.seen.add((st.st_dev, st.st_ino))
            return iter(sorted(os.scandir(folder), key=lambda e: e.name))
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                self._beyond(folder, rel)
            else:
                self.ignored += 1
            return None

    def files(self) -> Iterator[tuple[str, Path, None]]:
        """The files in path order, component by component: each folder's entries sorted by
        name, a subfolder's files where its name falls. Only the folders on the way down
        are held (an explicit stack, not recursion: very deep trees must not hit Python's
        recursion limit)."""
        top = self.entries(self.src, "")
        stack = [(top, "")] if top is not None else []
        count = 0
        while stack:
            found, rel = stack[-1]
            e = next(found, None)
            if e is None:
                stack.pop()
                continue
            child = f"{rel}{e.name}"
            if e.name.startswith("."):
                self.ignored += 1
            elif _is_dir(e):
                inner = None if self.is_out(Path(e.path)) else self.entries(Path(e.path), child)
                if inner is not None:
                    stack.append((inner, child + "/"))
            elif len(os.fsencode(e.path)) >= self.limit:
                self.too_long.append(child)  # its folder opens, the file by name does not
            elif _is_file(e):
                count += 1
                if self.progress is not None:
                    self.progress("walk", count, 0)
                yield child, Path(e.path), None
            elif e.is_symlink():
                self.broken.append(child)
            else:
                self.ignored += 1  # socket, fifo, device

    def _beyond(self, folder: Path, rel: str) -> None:
        """The files under a folder whose path is over PATH_MAX, into ``too_long``: each
        folder opened relative to its parent's descriptor (no name is ever too long that
        way), one descriptor held per level on the way down."""
        try:
            parent = os.open(folder.parent, _DIR)
        except OSError:
            self.ignored += 1
            return
        stack: list[tuple[int, Iterator[tuple[str, str]], str]] = []
        try:
            self._enter(parent, folder.name, f"{rel}/" if rel else "", stack)
        finally:
            os.close(parent)
        while stack:
            fd, listed, prefix = stack[-1]
            entry = next(listed, None)
            if entry is None:
                os.close(fd)
                stack.pop()
                continue
            name, kind = entry
            child = prefix + name
            if name.startswith(".") or kind == "other":
                self.ignored += 1
            elif kind == "dir":
                self._enter(fd, name, child + "/", stack)
            elif kind == "file":
                self.too_long.append(child)
            else:
                self.broken.append(child)

    def _enter(
        self, fd: int, name: str, rel: str, stack: list[tuple[int, Iterator[tuple[str, str]], str]]
    ) -> None:
        try:
            inner = os.open(name, _DIR, dir_fd=fd)
        except OSError:  # unreadable, or out of descriptors: left out, as locally
            self.ignored += 1
            return
        try:
            st = os.fstat(inner)
            if (st.st_dev, st.st_ino) in self.seen:
                raise OSError(errno.ELOOP, "walked already")
            self.seen.add((st.st_dev, st.st_ino))
            with os.scandir(inner) as found:
                listed = sorted((e.name, _kind(e)) for e in found)
        except OSError:
            os.close(inner)
            self.ignored += 1
            return
        stack.append((inner, iter(listed), rel))


def _kind(e: os.DirEntry[str]) -> str:
    if _is_dir(e):
        return "dir"
    if _is_file(e):
        return "file"
    return "link" if e.is_symlink() else "other"


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what ``path`` leads to; None if it leads nowhere."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
