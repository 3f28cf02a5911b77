"""Exception types. Each carries the file (and, for shards, record and offset) it concerns.

The library raises these; the CLI turns them into one-line ``Error: ...`` messages.
"""

from __future__ import annotations


class ImgrecError(Exception):
    """Base class for every error imgrec raises on purpose."""


class InputError(ImgrecError):
    """A source image or option the run cannot use."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class OutputError(ImgrecError):
    """The output folder cannot be written as asked (exists, not empty, not writable)."""


class ShardError(ImgrecError):
    """A shard or record that is damaged or does not follow the schema."""

    def __init__(
        self, message: str, path: str, record: int | None = None, offset: int | None = None
    ) -> None:
        self.path = path
        self.record = record
        self.offset = offset
        where = path
        if record is not None:
            where += f", record {record}"
        if offset is not None:
            where += f" (byte offset {offset})"
        super().__init__(f"{where}: {message}")


class DependencyError(ImgrecError):
    """An optional dependency or device is missing."""
