"""The README and docs/ stay true to the code: CLI reference, commands and their options,
quick start, architecture, links."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from imgrec.cli import cli
from imgrec.images import loading

ROOT = Path(__file__).parents[2]


DOCS = ROOT / "docs"


README = (ROOT / "README.md").read_text()


COMMANDS = (DOCS / "commands.md").read_text()


ARCHITECTURE = (DOCS / "architecture.md").read_text()


def test_cli_reference_matches_help():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<!-- cli-reference:start -->" in (DOCS / "cli-reference.md").read_text()


def test_every_command_is_documented_in_the_commands_page():
    for name in cli.commands:
        assert f"### `imgrec {name} " in COMMANDS, name


def test_every_command_has_a_section_in_the_readme():
    commands = _section(README, "## Commands")
    assert "(docs/commands.md" in commands
    for name in cli.commands:
        assert f"### `imgrec {name} " in commands, name


def _command_section(name: str) -> str:
    """The commands page's text under ``### `imgrec NAME ...``` up to the next heading."""
    match = re.search(rf"^### `imgrec {name} .*$", COMMANDS, re.MULTILINE)
    assert match, name
    return re.split(r"^#{1,3} ", COMMANDS[match.end() :], maxsplit=1, flags=re.MULTILINE)[0]


def _mentions(text: str, opt: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text) is not None


# Where an option may be documented besides its command's own section: options every
# command shares (--json, -q) are in "Output and exit codes"; convert's section says that
# every pack option works the same way, so pack's section documents those.
SHARED = "### Output and exit codes"


ALSO_UNDER = {"convert": "pack"}


def test_every_option_of_every_command_is_documented():
    assert SHARED in COMMANDS
    shared = COMMANDS.split(SHARED, 1)[1].split("\n### ", 1)[0]
    undocumented = []
    for name, command in cli.commands.items():
        places = [_command_section(name), shared]
        if name in ALSO_UNDER:
            places.append(_command_section(ALSO_UNDER[name]))
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-") and not any(_mentions(p, opt) for p in places):
                    undocumented.append(f"imgrec {name} {opt}")
    assert not undocumented, f"not in docs/commands.md: {undocumented}"


def test_quick_start_lines_are_the_ci_lines():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    lines = [line for line in quick.splitlines() if line.startswith("pip install")]
    assert lines[0].startswith("pip install . && imgrec pack examples/images")
    assert lines[1] == 'pip install -e ".[test]" && pytest'
    assert lines[1] in (ROOT / ".ci" / "run").read_text()


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a "## " heading), up to the next "## " heading."""
    assert f"\n{heading}\n" in text, heading
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_architecture_names_every_module_and_no_missing_one():
    package = ROOT / "imgrec"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    named = set(re.findall(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b", ARCHITECTURE))
    outside = ("tests/", "scripts/", "examples/")  # files of the project, not of the package
    in_package = {n.removeprefix("imgrec/") for n in named if not n.startswith(outside)}
    assert not modules - in_package, f"not in docs/architecture.md: {modules - in_package}"
    assert not in_package - modules, f"no such module under imgrec/: {in_package - modules}"
    missing = sorted(n for n in named if n.startswith(outside) and not (ROOT / n).exists())
    assert not missing, f"no such file: {missing}"


def test_the_readme_links_every_docs_page():
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")}
    linked = {target.split("#", 1)[0] for target in _links(README)}
    assert not pages - linked, f"not linked from README.md: {pages - linked}"


def _without_code(text: str) -> str:
    """The text outside fenced code blocks, with inline code spans emptied."""
    return re.sub(r"`[^`\n]*`", "``", _without_code_blocks(text))


def _links(text: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", _without_code(text))


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces made hyphens."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _without_code_blocks(text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n, candidate = 0, slug
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_every_relative_link_points_to_a_file_and_heading_that_exist():
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in _links(page.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            name = f"{page.relative_to(ROOT)}: {target}"
            if not file.exists():
                broken.append(f"{name} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
                broken.append(f"{name} (no such heading)")
    assert not broken, broken


PIXEL_RULES = DOCS / "pixel-rules.md"


def _readme_table(heading: str) -> list[list[str]]:
    text = PIXEL_RULES.read_text()
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # without the header row


def test_readme_mode_table_matches_the_code():
    rows = _readme_table("# Pixel rules")
    documented = {}
    for cells in rows:
        for mode in re.findall(r"`([^`]+)`", cells[0]):
            documented[mode] = cells
    assert set(documented) == set(loading.MODES)
    for name, mode in loading.MODES.items():
        cells = documented[name]
        assert cells[2] == mode.dtype, name
        base = cells[1].split(",")[0]
        assert base == str(mode.base), name
        assert ("4 with real" in cells[1]) == mode.alpha, name


def test_readme_skip_reasons_match_the_code():
    rows = _readme_table("## Skip reasons")
    assert {r[0].strip("`"): r[1] for r in rows} == loading.REASONS


def test_the_tests_map_names_every_test_file():
    tests = ROOT / "tests"
    files = {p.relative_to(tests).as_posix() for p in tests.rglob("test_*.py")}
    named = set(re.findall(r"`((?:\w+/)+test_\w+\.py)`", (tests / "README.md").read_text()))
    assert files == named, f"missing: {files - named}, no such file: {named - files}"
