"""How the library reports progress: a callback the caller passes (the CLI draws bars).

Called as ``progress(stage, done, total)``; a pack's stages are "walk", "scan" and "pack",
verify's "verify" and "against", decode's "decode".
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    pass
