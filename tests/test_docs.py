"""The README stays true to the code: CLI reference, commands, quick start."""

from __future__ import annotations

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
