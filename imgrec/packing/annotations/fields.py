"""Per-image fields, as Hugging Face's imagefolder reads them: a ``metadata.jsonl`` (one
JSON object a line) or ``metadata.csv`` (a header row) in SRC, each row naming its image by
``file_name`` (relative to the metadata file's folder), any other columns its fields.

A column holds one type (``COLUMN_TYPES``): ``int``, ``float`` (numbers; integers among
them are widened), ``str`` or ``floats`` (lists of numbers). In JSON the values say their
type: true and false are the integers 1 and 0, and a column with a string and a number in
it is refused. A CSV cell has no type, so a column's is the first that fits all its cells,
as imagefolder's CSV reading does: ``int``, ``float``, ``floats`` (cells that are JSON lists
of numbers, ``[1.5, 2]``), else ``str`` (every cell as written). Every row gives every
column a value: a missing one (null, an empty cell, a key left out) is refused, since
records have no way to say "missing" yet.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ...core.errors import InputError
from . import Annotated, Source, Value

NAMES = ("metadata.jsonl", "metadata.csv")
KEY = "file_name"
COLUMN_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # what a feature key may hold
INT64 = (-(2**63), 2**63 - 1)  # what an int64_list holds
CSV_INT = re.compile(r"[+-]?\d+")
CSV_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # no nan, inf or 1_000
ONE = {"int": "an integer", "float": "a number", "str": "a string", "floats": "a list of numbers"}
MANY = {"int": "integers", "float": "numbers", "str": "strings", "floats": "lists of numbers"}


def _missing(line: int, column: str, what: str) -> str:
    return (
        f"line {line}: {column!r} is {what}; missing values are not packed (yet): give every"
        " image a value, or leave the column out"
    )


def _metadata_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    found = [path / name for name in NAMES if (path / name).is_file()]
    if len(found) != 1:
        what = "both metadata.jsonl and metadata.csv; keep one" if found else "no metadata file"
        raise InputError(f"{what} (per-image fields come from one of them)", str(path))
    return found[0]


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the metadata file ({e.strerror or e})", str(path)) from None
    try:
        return data.decode("utf-8-sig")  # spreadsheets save CSV with a BOM
    except UnicodeDecodeError as e:
        raise InputError(
            f"not UTF-8 text (byte {e.start}); save the metadata file as UTF-8", str(path)
        ) from None


def _check_name(column: str, line: int, where: str) -> None:
    if not COLUMN_NAME.fullmatch(column):
        raise InputError(
            f"column {column!r} (line {line}): a field's name may hold only letters, digits,"
            " _, - and .; rename it",
            where,
        )


def _json_value(value: Any, line: int, column: str, where: str) -> tuple[str, Value]:
    """A JSON value's column type and the value as a field holds it."""
    if value is None:
        raise InputError(_missing(line, column, "null"), where)
    if isinstance(value, bool):
        return "int", int(value)
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise InputError(
                f"line {line}: {column!r} is {value}, beyond the 64-bit integers a record holds",
                where,
            )
        return "int", value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"line {line}: {column!r} is {value}, not a finite number", where)
        return "float", value
    if isinstance(value, str):
        return "str", value
    if isinstance(value, list):
        numbers = _numbers(value)
        if numbers is None:
            raise InputError(
                f"line {line}: {column!r} is a list of other things than finite numbers; only"
                " lists of numbers are packed (yet)",
                where,
            )
        return "floats", numbers
    raise InputError(
        f"line {line}: {column!r} is a JSON object; nested fields are not packed (yet)", where
    )


def _numbers(values: list[Any]) -> tuple[float, ...] | None:
    """A list of finite numbers as floats; None if it is not one."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    try:
        floats = tuple(float(v) for v in values)
    except OverflowError:
        return None
    return floats if all(math.isfinite(v) for v in floats) else None


class _Table:
    """The rows read so far: each image's values by column, the columns in the order they
    first appear, and each column's type."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.rows: dict[str, tuple[int, dict[str, Any]]] = {}  # file_name → (line, values)
        self.types: dict[str, tuple[str, int]] = {}  # column → (type, line it was set on)

    def add(self, line: int, row: dict[str, Any]) -> None:
        name = row.pop(KEY, None)
        if not isinstance(name, str) or not name.strip():
            what = "no file_name" if name is None else f"file_name {name!r}, not a file's name"
            raise InputError(f"line {line} has {what}", self.where)
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise InputError(
                f"line {line}: file_name {name!r} is outside the metadata file's folder; name"
                " images by their path relative to it",
                self.where,
            )
        rel = path.as_posix()
        if rel in self.rows:
            raise InputError(
                f"file_name {name!r} is on line {self.rows[rel][0]} and on line {line}; one"
                " line per image",
                self.where,
            )
        self.rows[rel] = (line, row)

    def fit(self, column: str, kind: str, line: int) -> None:
        """``column`` has a value of ``kind`` on ``line``: its type so far widens from int to
        float; any other mix is refused."""
        if column not in self.types:
            _check_name(column, line, self.where)
            self.types[column] = (kind, line)
            return
        have, since = self.types[column]
        if have == kind or have == "float" and kind == "int":
            return
        if have == "int" and kind == "float":
            self.types[column] = ("float", since)
            return
        raise InputError(
            f"column {column!r} holds {MANY[have]} (from line {since}), but line {line} has"
            f" {ONE[kind]}; a column holds one type",
            self.where,
        )

    def fields(self) -> dict[str, tuple[Value, ...]]:
        """Each image's values in column order, every column given (ints widened)."""
        columns = list(self.types)
        found = {}
        for rel, (line, row) in self.rows.items():
            for column in columns:
                if column not in row:
                    since = self.types[column][1]
                    raise InputError(
                        f"line {line} has no {column!r} (line {since} has it); give every image"
                        " a value: missing values are not packed (yet)",
                        self.where,
                    )
            found[rel] = tuple(
                float(row[c]) if self.types[c][0] == "float" else row[c] for c in columns
            )
        return found


def _jsonl(text: str, table: _Table) -> None:
    # Lines end at \n only: JSON strings may hold U+2028 and other breaks splitlines() knows.
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(
                f"line {line} is not valid JSON ({e.msg}, column {e.colno})", table.where
            ) from None
        except RecursionError:
            raise InputError(f"line {line} nests JSON too deeply", table.where) from None
        if not isinstance(data, dict):
            raise InputError(
                f'line {line} is not a JSON object ({{"file_name": ..., ...}})', table.where
            )
        row = {}
        for column, value in data.items():
            if column == KEY:
                row[KEY] = value
                continue
            kind, row[column] = _json_value(value, line, column, table.where)
            table.fit(column, kind, line)
        table.add(line, row)


def _cell(text: str) -> tuple[str, Value]:
    """A CSV cell's type (of those it could be, the narrowest) and its value as that."""
    if CSV_INT.fullmatch(text):
        value = int(text)
        return ("int", value) if INT64[0] <= value <= INT64[1] else ("str", text)
    if CSV_FLOAT.fullmatch(text):
        number = float(text)
        return ("float", number) if math.isfinite(number) else ("str", text)
    if text.startswith("["):
        try:
            numbers = _numbers(json.loads(text))
        except (ValueError, TypeError, RecursionError):
            numbers = None
        if numbers is not None:
            return "floats", numbers
    return "str", text


# A CSV column's type: the first whose cell types include all of the column's.
CSV_TYPES = (("int", {"int"}), ("float", {"int", "float"}), ("floats", {"floats"}))


def _csv(text: str, table: _Table) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    cells: dict[str, list[tuple[str, Value, str]]] = {}
    try:
        header = next(reader, [])
        if KEY not in header:
            raise InputError(
                f"the header row (line 1) has no {KEY} column; its columns: {header}", table.where
            )
        if len(set(header)) < len(header):
            raise InputError("the header row (line 1) names a column twice", table.where)
        for column in header:
            if column != KEY:
                _check_name(column, 1, table.where)
                cells[column] = []
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(
                    f"line {line} has {len(row)} cells, the header {len(header)}", table.where
                )
            texts = dict(zip(header, row, strict=True))
            for column, found in cells.items():
                if texts[column] == "":
                    raise InputError(_missing(line, column, "empty"), table.where)
                found.append((*_cell(texts[column]), texts[column]))
            table.add(line, {KEY: texts[KEY]})
    except csv.Error as e:
        raise InputError(f"line {reader.line_num}: {e}", table.where) from None
    for column, found in cells.items():
        kinds = {kind for kind, _, _ in found}
        kind = next((k for k, fits in CSV_TYPES if kinds <= fits), "str")
        table.types[column] = (kind, 1)
        for (_, value, raw), (_, stored) in zip(found, table.rows.values(), strict=True):
            stored[column] = raw if kind == "str" else value


def read(path: Path) -> Source:
    """Per-image fields from ``metadata.jsonl`` or ``metadata.csv`` (``path``, or the one in
    the folder ``path``): ``lookup(rel)`` gives the image's ``fields``, in column order, or
    None for an image the file does not list. Anything the file holds that cannot be packed
    as fields is an ``InputError`` naming the file and the line."""
    path = _metadata_file(path)
    where = str(path)
    if path.suffix not in (".jsonl", ".csv"):
        raise InputError("per-image fields come from a .jsonl or .csv metadata file", where)
    text = _text(path)
    table = _Table(where)
    (_jsonl if path.suffix == ".jsonl" else _csv)(text, table)
    if not table.rows:
        raise InputError("lists no images (no rows with a file_name)", where)
    columns = {column: kind for column, (kind, _) in table.types.items()}
    rows = table.fields()
    names = list(columns)

    def lookup(rel: str) -> Annotated | None:
        values = rows.get(rel)
        return (
            None
            if values is None
            else Annotated(fields=tuple(zip(names, values, strict=True)), where=where)
        )

    def listed() -> Iterator[str]:
        return iter(rows)

    return Source(
        kind="fields", where=where, classes={}, columns=columns, lookup=lookup, listed=listed
    )
