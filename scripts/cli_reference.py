"""Write docs/cli-reference.md's CLI reference from the commands' own --help.

    python scripts/cli_reference.py          # rewrite docs/cli-reference.md in place
    python scripts/cli_reference.py --check  # exit 1 if docs/cli-reference.md is out of date

tests/project/test_docs.py runs the check, so the CLI reference cannot drift from --help.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from imgrec.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli-reference.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def reference() -> str:
    parts = [START, ""]
    for args in ([], *[[name] for name in sorted(cli.commands)]):
        result = CliRunner().invoke(cli, [*args, "--help"], prog_name="imgrec", terminal_width=100)
        assert result.exit_code == 0, result.output
        parts += [f"### `imgrec {' '.join(args)} --help`".replace("  ", " "), "", "```"]
        parts += [result.stdout.rstrip(), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def updated(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + reference() + tail


def main() -> int:
    name = PAGE.relative_to(ROOT).as_posix()
    text = PAGE.read_text()
    if START not in text or END not in text:
        print(f"{name} has no {START} ... {END} section", file=sys.stderr)
        return 1
    new = updated(text)
    if "--check" in sys.argv:
        if new != text:
            print(f"{name}'s CLI reference differs from --help: run scripts/cli_reference.py")
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
