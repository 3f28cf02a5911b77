"""The architecture stays as docs/architecture.md draws it: imports point one way, through the
layers below, with no cycle (function-level imports included); no module reaches into
another's private names; no module grows past about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "imgrec"


MAX_LINES = 400


# The folders, lowest first: a module may import modules of its own folder or of folders
# below it. Folders in one group are siblings and import nothing of each other: the read
# side never imports the pack side (nor the other way round).
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("images",),
    ("format",),
    ("reading", "packing"),
    ("checking",),
    ("cli",),
]


# the package's lazy names, ``python -m imgrec``, and ``imgrec.spark.write`` (an entry point
# for Spark applications, as the command line is one for shells)
TOP_LEVEL = {"imgrec", "__main__", "spark"}


def folder(module: str) -> str:
    return module.split(".")[0]


def layer(module: str) -> int:
    for n, folders in enumerate(LAYERS):
        if folder(module) in folders:
            return n
    raise KeyError(module)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "imgrec"] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported imgrec module, names taken from it) for every import in the file."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "imgrec":
        package = []
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            elif (node.module or "").startswith("imgrec"):
                target = node.module.removeprefix("imgrec").strip(".")  # type: ignore[union-attr]
            else:
                continue
            names = [a.name for a in node.names]
            known = modules()
            # "from . import storage" imports the module storage
            for n in names:
                sub = f"{target}.{n}".strip(".")
                if sub in known:
                    out.append((sub, []))
            out.append((target or "imgrec", names))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imgrec."):
                    out.append((alias.name.removeprefix("imgrec."), []))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        if name == "imgrec":
            continue  # the package's lazy names are resolved by attribute, not imported
        for target, _ in imports(name, path):
            if target in known and target not in (name, "imgrec"):
                edges.setdefault(name, set()).add(target)
    return edges


def test_every_module_is_in_a_layer_folder():
    folders = {f for group in LAYERS for f in group}
    loose = {m for m in modules() if m not in TOP_LEVEL and folder(m) not in folders}
    assert not loose
    assert {f for f in folders if not (PACKAGE / f / "__init__.py").exists()} == set()


def test_imports_point_down_the_layers():
    wrong = [
        f"{a} ({folder(a)}) imports {b} ({folder(b)})"
        for a, targets in graph().items()
        if a not in TOP_LEVEL
        for b in targets
        if layer(b) > layer(a) or (layer(b) == layer(a) and folder(b) != folder(a))
    ]
    assert not wrong


def test_the_read_side_imports_nothing_of_the_pack_side():
    # Said on its own too: the one rule a reader of the layering above might miss.
    wrong = [
        f"{a} imports {b}"
        for a, targets in graph().items()
        if folder(a) == "reading"
        for b in targets
        if folder(b) == "packing"
    ]
    assert not wrong


def test_no_import_cycles():
    edges = graph()
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join([*stack[stack.index(node) :], node]))
            return
        if node in done:
            return
        done.add(node)
        for target in sorted(edges.get(node, ())):
            visit(target, [*stack, node], done)

    done: set[str] = set()
    for node in sorted(edges):
        visit(node, [], done)
    assert not cycles


def test_no_module_takes_another_modules_private_names():
    reach_ins = []
    for name, path in modules().items():
        for target, names in imports(name, path):
            reach_ins += [f"{name} imports {target}.{n}" for n in names if _private(n)]
        tree = ast.parse(path.read_text())
        aliases = {
            (a.asname or a.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level
            for a in node.names
        }
        reach_ins += [
            f"{name} uses {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
        ]
    assert not reach_ins


def test_no_module_is_over_about_400_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
