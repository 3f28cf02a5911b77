"""The README stays true to the code: CLI reference, commands, quick start, architecture."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from imgrec.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_cli_reference_matches_help():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_is_documented_in_the_readme():
    for name in cli.commands:
        assert f"### `imgrec {name} " in README, name


def test_quick_start_lines_are_the_ci_lines():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    lines = [line for line in quick.splitlines() if line.startswith("pip install")]
    assert lines[0].startswith("pip install . && imgrec pack examples/images")
    assert lines[1] == 'pip install -e ".[test]" && pytest'
    assert lines[1] in (ROOT / ".ci" / "run").read_text()


def _section(heading: str) -> str:
    """The README's text under ``heading`` (a "## " heading), up to the next "## " heading."""
    assert f"\n{heading}\n" in README, heading
    return README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_architecture_names_every_module_and_no_missing_one():
    package = ROOT / "imgrec"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    section = _section("## Architecture")
    named = set(re.findall(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b", section))
    outside = ("tests/", "scripts/", "examples/")  # files of the project, not of the package
    in_package = {n.removeprefix("imgrec/") for n in named if not n.startswith(outside)}
    assert not modules - in_package, f"not in the README's Architecture: {modules - in_package}"
    assert not in_package - modules, f"no such module under imgrec/: {in_package - modules}"
    missing = sorted(n for n in named if n.startswith(outside) and not (ROOT / n).exists())
    assert not missing, f"no such file: {missing}"
