"""The index a COCO file is read into, so that a pack holds none of it in memory: written
once by one process (``Writer``), then read by any number of processes and threads
(``Index``).

While the file is read, an SQLite database in a folder of its own gathers it. Tables:
``images`` (id, file_name, width, height, and the image's first problem, if any), keyed by
id and by file_name; ``boxes``, each annotation's box (and its keypoints, a blob of float64
x, y, v triples, or NULL), keyed by (image id, position in the file), so that an image's
boxes are next to each other on disk and come out in the file's order (written first in the
file's order, then sorted). A box's ``shape`` is its annotation's segmentation as compact
JSON text (polygons or either RLE form), NULL if none: on disk with the box, never in
memory past a batch.

When the file is read, ``finish`` writes what a lookup needs to ``lookup.bin``, so that
finding an image's annotations costs the same whatever the file's size: a hash table of
file names (open addressing, at most half full; a slot holds 24 bits of its name's hash
and the place of a record, 0 for none), then one record per image: its name and, in
``marshal``'s form, its id, size, problem and boxes. A lookup is a few positioned reads
(``os.pread``): a slot or two, then the record's header and the record. The table is built
in memory (8 bytes per slot, 16 to 32 per image). The boxes then leave the database, which
keeps the images' names for ``listed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import weakref
from array import array
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
# id, width, height, problem, boxes (none when there is a problem)
Found = tuple[int, int | None, int | None, str | None, list[Box]]

LOOKUP = "lookup.bin"
_HEADER = struct.Struct("<QQ")  # lookup.bin: slots, then records from 16 + 8 * slots
_RECORD = struct.Struct("<II")  # a record: its name's length, its body's
_SLOT = 8  # a slot: the top 24 bits of the name's hash, then its record's place (40 bits)
_PLACE = (1 << 40) - 1


class Duplicate(Exception):
    """An image id or file name already in the index: ``id``, ``file_name`` of the first."""

    def __init__(self, id: int, file_name: str) -> None:
        super().__init__(id, file_name)
        self.id, self.file_name = id, file_name


class Writer:
    """Writes the index at ``path`` (a new file): images first, then boxes and problems."""

    def __init__(self, path: Path) -> None:
        self._path = path
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
        whatever the size), then copied in key order (SQLite's sort spills to files). Then
        write the lookup file."""
        self._flush()
        for statement in _BY_IMAGE.split(";\n"):
            self._db.execute(statement)
        self._db.execute("COMMIT")
        self._write_lookup(self._path.with_name(LOOKUP))
        # The boxes are in the lookup file now: what stays is the images, for ``listed``.
        self._db.execute("DROP TABLE boxes")
        self._db.execute("VACUUM")
        self._db.close()

    def _write_lookup(self, path: Path) -> None:
        (n,) = self._db.execute("SELECT count(*) FROM images").fetchone()
        size = max(8, 1 << (2 * n - 1).bit_length())  # a power of two, at least 2n
        slots = array("Q", [0]) * size
        images = self._db.execute(
            "SELECT id, file_name, width, height, problem FROM images ORDER BY id"
        )
        boxes = self._db.execute(
            "SELECT image_id, x0, y0, x1, y1, label, ident, area, crowd, points, shape"
            " FROM boxes ORDER BY image_id, seq"
        )
        pending = boxes.fetchone()
        with open(path, "wb") as out:
            at = _HEADER.size + _SLOT * size
            out.seek(at)
            for id, file_name, width, height, problem in images:
                own: list[tuple[Any, ...]] = []
                while pending is not None and pending[0] <= id:
                    if pending[0] == id and problem is None:
                        own.append(pending[1:])
                    pending = boxes.fetchone()
                name = file_name.encode()
                body = marshal.dumps((id, width, height, problem, own))
                out.write(_RECORD.pack(len(name), len(body)) + name + body)
                if at > _PLACE:
                    raise OSError(f"{path}: over 1 TiB of annotations")
                h = _hash(name)
                k = h & (size - 1)
                while slots[k]:
                    k = (k + 1) & (size - 1)
                slots[k] = h & ~_PLACE | at
                at += _RECORD.size + len(name) + len(body)
            out.seek(0)
            out.write(_HEADER.pack(size, n))
            if sys.byteorder != "little":
                slots.byteswap()
            slots.tofile(out)

    def abandon(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


class Index:
    """A finished index, read from any process and thread: lookups are positioned reads of
    one file descriptor, which threads share and a fork inherits; ``listed`` opens SQLite
    on a connection of its own. The folder holding it is removed by ``close`` (or when the
    index is dropped), by the process that made it only."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "index.sqlite"
        self._fd = os.open(folder / LOOKUP, os.O_RDONLY)
        self._size, self._images = _HEADER.unpack(os.pread(self._fd, _HEADER.size, 0))
        self._remove = weakref.finalize(self, _remove, folder, os.getpid(), self._fd)

    def __len__(self) -> int:
        return int(self._images)

    def image(self, file_name: str) -> Found | None:
        """(id, width, height, problem, boxes in the file's order) of the image of that
        file name, or None."""
        name = file_name.encode()
        h = _hash(name)
        k = h & (self._size - 1)
        while True:
            slot = int.from_bytes(os.pread(self._fd, _SLOT, _HEADER.size + _SLOT * k), "little")
            if not slot:
                return None
            at = slot & _PLACE
            if slot & ~_PLACE == h & ~_PLACE:
                length, body = _RECORD.unpack(os.pread(self._fd, _RECORD.size, at))
                record = os.pread(self._fd, length + body, at + _RECORD.size)
                if record[:length] == name:
                    found: Found = marshal.loads(record[length:])
                    return found
            k = (k + 1) & (self._size - 1)

    def _connect(self) -> sqlite3.Connection:
        # immutable: nothing writes the file any more, so no locks and no checks for changes
        return sqlite3.connect(f"{self.path.as_uri()}?mode=ro&immutable=1", uri=True)

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
        self._remove()


def make_folder(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="imgrec-coco-", dir=workdir))


def _hash(name: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "little")


def _remove(folder: Path, owner: int, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    if os.getpid() == owner:  # a forked worker leaves its parent's index alone
        shutil.rmtree(folder, ignore_errors=True)
