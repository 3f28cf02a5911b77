"""Large JSON files read as a stream (``ijson``, over yajl), so that a reader's memory does
not grow with the file: where a syntax error is (yajl says only "right here", in a window of
the block it was given), and Python's ``NaN``, ``Infinity`` and ``-Infinity``, which
``json.dump`` writes for such floats and yajl refuses.

``Blocks`` is the file as ijson reads it; around an iteration over it, ``syntax_errors``
makes a syntax error an ``InputError`` naming the byte and line.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from typing import BinaryIO

import ijson

from ...core.errors import InputError

BLOCK = 1 << 16  # bytes handed to yajl at a time
# Python's tokens, and strings of the same length that yajl reads (no JSON number is NaN,
# and yajl refuses a number too large for a double); SPECIAL gives back what they stand for.
_TOKENS = {b"NaN": b'"N"', b"Infinity": b'"Infini"', b"-Infinity": b'"-Infini"'}
SPECIAL = {"N": math.nan, "Infini": math.inf, "-Infini": -math.inf}
_TOKEN = re.compile(rb"-?Infinity|NaN")
_QUOTE_OR_ESCAPE = re.compile(rb'\\.|"', re.S)
_LONGEST = 9  # bytes of the longest token, held back from a block's end
_CARET = 40  # the column of yajl's "right here" caret, and of the offset in its window
_WINDOW = 30  # bytes of the block yajl shows before and after the offset


class Blocks:
    """A binary file as ijson reads it, a block at a time, keeping where the block being
    parsed starts and how many lines came before it. ``lenient``: NaN and the infinities
    outside strings become tokens yajl reads, of the same length (so positions hold)."""

    def __init__(self, f: BinaryIO, lenient: bool = False) -> None:
        self._f = f
        self._lenient = lenient
        self._carry = b""
        self._in_string = False
        self.start = 0  # byte offset of the block last read
        self.block = b""
        self.lines = 0  # newlines before ``block``

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks for nothing first, to learn that the file is binary
        self.start += len(self.block)
        self.lines += self.block.count(b"\n")
        while True:
            chunk = self._f.read(BLOCK)
            if not self._lenient:
                self.block = chunk
                return chunk
            self.block, self._carry = self._fix(self._carry + chunk, last=not chunk)
            if self.block or not chunk:
                return self.block

    def _fix(self, data: bytes, last: bool) -> tuple[bytes, bytes]:
        """``data`` up to a point where no token or escape is cut, its tokens outside strings
        replaced; and the rest, for the next block (nothing if ``last``)."""
        cut = len(data)
        if not last:
            cut = max(0, cut - _LONGEST)
            while cut > 0 and data[cut - 1 : cut] == b"\\":
                cut -= 1
            for m in _TOKEN.finditer(data, max(0, cut - _LONGEST)):
                if m.start() < cut < m.end():
                    cut = m.start()
        data, rest = data[:cut], data[cut:]
        out, at = bytearray(data), 0
        for m in _TOKEN.finditer(data):
            self._in_string ^= _quotes(data, at, m.start()) % 2 == 1
            at = m.start()
            if not self._in_string:
                out[m.start() : m.end()] = _TOKENS[m.group()]
        self._in_string ^= _quotes(data, at, len(data)) % 2 == 1
        return bytes(out), rest

    def where(self, error: Exception) -> str:
        """Where yajl's error is: "at byte N (line L)" (N counted from 0), from the window of
        the block that its message shows."""
        lines = str(error).split("\n")
        if lines[0].endswith("premature EOF"):
            return "at its end (the file is cut short?)"
        at = _offset(self.block, lines[1] if len(lines) > 1 else "")
        if at is None:
            end = self.start + len(self.block)
            return f"between bytes {self.start} and {end} (line {self.lines + 1} or after)"
        line = self.lines + self.block.count(b"\n", 0, at) + 1
        return f"at byte {self.start + at} (line {line})"


def _quotes(data: bytes, start: int, stop: int) -> int:
    """How many double quotes in data[start:stop] open or close a string."""
    if b"\\" not in data[start:stop]:
        return data.count(b'"', start, stop)
    return sum(m.group() == b'"' for m in _QUOTE_OR_ESCAPE.finditer(data, start, stop))


def _offset(block: bytes, window: str) -> int | None:
    """The offset in ``block`` of the byte yajl's window points at (one past the byte it
    stopped at: the offset returned is that byte's)."""
    shown = block.replace(b"\n", b" ").replace(b"\r", b" ")
    try:
        text = window.encode()
    except UnicodeEncodeError:
        return None
    for o in range(min(_WINDOW, len(block) + 1)):  # near the start, the window is padded
        if text == b" " * (_CARET - o) + shown[: o + _WINDOW]:
            return max(0, o - 1)
    found = shown.find(text[_CARET - _WINDOW :])
    return found + _WINDOW - 1 if found >= 0 else None


class NotJSON(InputError):
    """A file that is not JSON: where, and yajl's reason."""


@contextlib.contextmanager
def syntax_errors(blocks: Blocks, path: str) -> Iterator[None]:
    """Around an ijson iteration over ``blocks``: a syntax error in the file is raised as
    ``NotJSON`` naming its place."""
    try:
        yield
    except ijson.JSONError as e:
        reason = str(e).split("\n")[0]
        raise NotJSON(f"is not valid JSON {blocks.where(e)}: {reason}", path) from None
