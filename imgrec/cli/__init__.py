"""The ``imgrec`` command: parse options, call one library function, print."""

from .commands import cli, main

__all__ = ["cli", "main"]
