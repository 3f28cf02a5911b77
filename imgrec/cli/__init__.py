"""The ``imgrec`` command: parse options, call one library function, print."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["cli", "main"]


def main() -> None:
    """``imgrec``: the command loaded here, so that a Ctrl-C while it loads (Click and
    the commands take a few tens of milliseconds) stops as one later would, without a
    traceback."""
    try:
        from .commands import main as run
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)  # common.EXIT_INTERRUPTED, which is not loaded yet
    run()


def __getattr__(name: str) -> Any:
    if name == "cli":
        from .commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
