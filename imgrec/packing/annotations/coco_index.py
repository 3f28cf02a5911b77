"""The index a COCO file is read into, so that a pack holds none of it in memory: an SQLite
database in a folder of its own, written once by one process (``Writer``), then read by any
number of processes and threads (``Index``).

Tables: ``images`` (id, file_name, width, height, and the image's first problem, if any),
keyed by id and by file_name; ``boxes``, each annotation's box (and its keypoints, a blob of
float64 x, y, v triples, or NULL), keyed by (image id, position in the file), so that an
image's boxes are next to each other on disk and come out in the file's order (written
first in the file's order, then sorted). A box's ``shape`` is its annotation's
segmentation as compact JSON text (polygons or either RLE form), NULL if none: on disk
with the box, never in memory past a batch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BATCH = 10_000  # rows inserted at a time
# ... or fewer: their segmentations' text past this many characters (a crowd's counts list
# can be long), so that a batch's memory stays bounded
BATCH_CHARS = 8_000_000
LISTED = 1_000  # file names fetched at a time by ``Index.listed``
# SQLite's page cache, in KiB (negative: a size, not pages): the boxes are appended, then
# sorted (in files past this), so a larger cache would only cost memory.
CACHE_KIB = 8_192

_SCHEMA = """
CREATE TABLE images (
    id INTEGER PRIMARY KEY, file_name TEXT NOT NULL UNIQUE, width INTEGER, height INTEGER,
    problem TEXT
);
CREATE TABLE written (
    image_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    x0 REAL, y0 REAL, x1 REAL, y1 REAL, label INTEGER, ident INTEGER, area REAL, crowd INTEGER,
    points BLOB, shape TEXT
);
"""
_BY_IMAGE = """
CREATE TABLE boxes (
    image_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    x0 REAL, y0 REAL, x1 REAL, y1 REAL, label INTEGER, ident INTEGER, area REAL, crowd INTEGER,
    points BLOB, shape TEXT, PRIMARY KEY (image_id, seq)
) WITHOUT ROWID;
INSERT INTO boxes SELECT * FROM written ORDER BY image_id, seq;
DROP TABLE written
"""
# x0, y0, x1, y1, label, annotation id, area, crowd, keypoints (float64 x, y, v triples),
# segmentation (JSON text)
Box = tuple[float, float, float, float, int, int, float | None, bool, bytes | None, str | None]


class Duplicate(Exception):
    """An image id or file name already in the index: ``id``, ``file_name`` of the first."""

    def __init__(self, id: int, file_name: str) -> None:
        super().__init__(id, file_name)
        self.id, self.file_name = id, file_name


class Writer:
    """Writes the index at ``path`` (a new file): images first, then boxes and problems."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        # A scratch file, rebuilt from the COCO file after any crash: no journal, no fsync.
        self._db.executescript(
            f"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-{CACHE_KIB};"
            + _SCHEMA
        )
        self._db.execute("BEGIN")
        self._boxes: list[tuple[Any, ...]] = []
        self._chars = 0

    def image(self, id: int, file_name: str, width: int | None, height: int | None) -> None:
        """Add an image; ``Duplicate`` names the image already there with its id or name."""
        try:
            self._db.execute(
                "INSERT INTO images VALUES (?, ?, ?, ?, NULL)", (id, file_name, width, height)
            )
        except sqlite3.IntegrityError:
            row = self._db.execute(
                "SELECT id, file_name FROM images WHERE id = ? OR file_name = ?", (id, file_name)
            ).fetchone()
            raise Duplicate(row[0], row[1]) from None

    def sizes(self) -> Iterator[tuple[int, int | None, int | None]]:
        """(id, width, height) of every image, by id."""
        yield from self._db.execute("SELECT id, width, height FROM images ORDER BY id")

    def box(self, image_id: int, seq: int, box: Box) -> None:
        self._boxes.append((image_id, seq, *box))
        self._chars += len(box[9] or "") + len(box[8] or b"")
        if len(self._boxes) >= BATCH or self._chars >= BATCH_CHARS:
            self._flush()

    def problem(self, image_id: int, text: str) -> None:
        """Record the image's problem, unless it has one already (the first one stands)."""
        self._db.execute(
            "UPDATE images SET problem = ? WHERE id = ? AND problem IS NULL", (text, image_id)
        )

    def _flush(self) -> None:
        self._db.executemany(
            "INSERT INTO written VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._boxes
        )
        self._boxes.clear()
        self._chars = 0

    def finish(self) -> None:
        """Sort the boxes by image: written in the file's order (appended, which is fast
        whatever the size), then copied in key order (SQLite's sort spills to files)."""
        self._flush()
        for statement in _BY_IMAGE.split(";\n"):
            self._db.execute(statement)
        self._db.execute("COMMIT")
        self._db.close()

    def abandon(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


class Index:
    """A finished index, read from any process and thread: each process opens its own
    connection on first use (SQLite's must not cross a fork), shared by its threads behind a
    lock. The folder holding it is removed by ``close`` (or when the index is dropped), by
    the process that made it only."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "index.sqlite"
        self._connections: dict[int, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._remove = weakref.finalize(self, _remove, folder, os.getpid())

    def _connect(self) -> sqlite3.Connection:
        # immutable: nothing writes the file any more, so no locks (which do not cross a
        # fork either) and no checks for changes.
        return sqlite3.connect(
            f"{self.path.as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            db = self._connections.get(os.getpid())
            if db is None:
                db = self._connections[os.getpid()] = self._connect()
            return db.execute(sql, args).fetchall()

    def image(self, file_name: str) -> tuple[int, int | None, int | None, str | None] | None:
        """(id, width, height, problem) of the image of that file name, or None."""
        rows = self._query(
            "SELECT id, width, height, problem FROM images WHERE file_name = ?", (file_name,)
        )
        return tuple(rows[0]) if rows else None

    def boxes(self, image_id: int) -> list[Box]:
        """The image's boxes, in the file's order."""
        return self._query(
            "SELECT x0, y0, x1, y1, label, ident, area, crowd, points, shape FROM boxes"
            " WHERE image_id = ?"
            " ORDER BY seq",
            (image_id,),
        )

    def listed(self) -> Iterator[str]:
        """Every image's file name, in name order (on a connection of its own, so that
        lookups can go on meanwhile)."""
        db = self._connect()
        try:
            rows = db.execute("SELECT file_name FROM images ORDER BY file_name")
            while batch := rows.fetchmany(LISTED):
                for (name,) in batch:
                    yield name
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            db = self._connections.pop(os.getpid(), None)
            if db is not None:
                db.close()
        self._remove()


def make_folder(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="imgrec-coco-", dir=workdir))


def _remove(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked worker leaves its parent's index alone
        shutil.rmtree(folder, ignore_errors=True)
