"""What every ``imgrec`` command shares: option decorators, error and Ctrl-C handling,
progress bars on stderr, JSON output, sizes for people."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from ..core.errors import ImgrecError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130  # as shells report a command stopped by Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # as shells report a command stopped by SIGPIPE (128 + 13)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Size(click.ParamType):  # type: ignore[type-arg]  # generic only in newer Click
    """WxH, e.g. 320x240 (width 320, height 240), as the library takes sizes: (height,
    width), here (240, 320)."""

    name = "WxH"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        w, _, h = str(value).lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            self.fail(f"{value!r} is not WxH with positive whole numbers, e.g. 224x224", param, ctx)
        return int(h), int(w)


SIZE = Size()


def expand(paths: tuple[str, ...]) -> list[str]:
    """PATH arguments, with ``-`` standing for paths read from stdin, one per line."""
    out: list[str] = []
    for p in paths:
        if p == "-":
            out.extend(line.rstrip("\n") for line in sys.stdin if line.strip())
        else:
            out.append(p)
    if not out:
        raise click.UsageError("no paths given (stdin was empty)")
    return out


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        f
    )


def quiet_option(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars.")(f)


def output_closed() -> NoReturn:
    """stdout was piped into e.g. `head`, which has read what it wanted: stop quietly, with
    the status of a process stopped by SIGPIPE (128 + 13), as other Unix tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_BROKEN_PIPE)


def errors_to_click(f: F) -> F:
    """Library errors become ``Error: ...`` on stderr and exit status 1, never a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ImgrecError as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError:  # here, for Click's own handling would exit 1, silently
            output_closed()
        except KeyboardInterrupt:
            # Temporary files are already gone (context managers): nothing half-written
            # carries a final name. (A pack interrupted once complete says so: cli/pack.py.)
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.command.name == "pack":
                interrupted(_pack_interrupted(ctx.params.get("out")))
            interrupted()

    return wrapper  # type: ignore[return-value]


def _pack_interrupted(out: str | None) -> str:
    """What to do after a pack stopped before its manifest: ``--resume`` once its plan is
    in the journal, else (stopped in the first pass) a plain run again."""
    from ..core import storage
    from ..packing.journal import resumable

    said = "Interrupted: stopped cleanly; no manifest was written."
    try:
        can = out is not None and resumable(storage.Folder(storage.location(out)))
    except (ImgrecError, OSError):  # cannot look (a store gone): say both ways
        return f"{said} `imgrec pack --resume` continues it if its plan was written."
    if can:
        return f"{said} `imgrec pack --resume` continues it."
    return f"{said} Nothing was finished to resume: run the same command again."


def interrupted(message: str = "Interrupted.") -> NoReturn:
    """Ctrl-C or SIGTERM: one line on stderr, and the status shells give Ctrl-C."""
    click.echo(message, err=True)
    sys.exit(EXIT_INTERRUPTED)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@contextmanager
def progress_bars(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A library progress callback drawing one tqdm bar per stage on stderr."""
    if quiet or not sys.stderr.isatty():  # no bar would be drawn: tqdm not even imported
        yield lambda stage, done, total: None
        return
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            in_bytes = stage == "verify"  # verify counts bytes checked, the others images
            bar = bars[stage] = tqdm(
                total=total or None,
                desc=stage,
                unit="B" if in_bytes else "img",
                unit_scale=in_bytes,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
            )
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


class _FirstLine(logging.Filter):
    """Beam logs each retry of an object-store call with the whole traceback; one line is
    kept ("Retry with exponential backoff: waiting ... because we caught exception: ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = (record.getMessage().strip().splitlines() or [""])[0]
        record.args = ()
        record.exc_info = record.exc_text = None
        return True


def quiet_beam_logs() -> None:
    """The command line owns its process's logging: Beam's import noise about GCP modules
    is dropped, and its retry messages are cut to one line."""
    root, retries = logging.getLogger(), logging.getLogger("apache_beam.utils.retry")
    if not any(isinstance(f, _FirstLine) for f in retries.filters):
        root.addFilter(_DropMessage("apitools not found"))
        retries.addFilter(_FirstLine())
