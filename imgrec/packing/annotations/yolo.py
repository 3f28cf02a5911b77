"""YOLO txt labels, as ultralytics lays them out: ``images/train/x.jpg`` has
``labels/train/x.txt``, one ``class cx cy w h`` line per object, the centre and size as
fractions 0..1 of the image's width and height. An image without a txt has no objects.

The files do not state the image's size, so boxes stay fractions: ``Annotated.normalized``
(corners ``cx - w/2`` ... ``cy + h/2``; the packer scales them by the displayed size).
Class ids are the dataset's own, from 0; their names come from ``classes.txt`` (one a
line, as labelImg writes it) or ``data.yaml`` / ``dataset.yaml`` (``names``: a list or an
``{id: name}`` mapping), looked for in the labels folder, then its parent, then the one
above (ultralytics keeps ``data.yaml`` beside ``images/`` and ``labels/``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ...core.errors import InputError
from . import Annotated, PixelBox, Source

NAME_FILES = ("classes.txt", "data.yaml", "dataset.yaml")
# Files round their values (often to 6 decimals), so a box touching an edge can come out a
# little past it: that much is taken as the edge itself.
EDGE_SLACK = 1e-4


def _decode(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the {what} ({e.strerror or e})", str(path)) from None
    try:
        return data.decode("utf-8-sig")  # a BOM, as Windows editors write, is no name
    except UnicodeDecodeError as e:
        raise InputError(
            f"not UTF-8 text (byte {e.start}); the {what} must be a text file", str(path)
        ) from None


def _classes_txt(path: Path) -> dict[int, str]:
    lines = _decode(path, "class names file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            raise InputError(
                f"line {number} is blank: a class's id is its line number (from 0), so a blank"
                " line would shift the ids after it; remove it",
                str(path),
            )
        if name in seen:
            raise InputError(
                f"line {number} names {name!r} again (line {seen[name]}); one name per class",
                str(path),
            )
        seen[name] = number
        names[number - 1] = name
    if not names:
        raise InputError("names no classes", str(path))
    return names


def _yaml_names(path: Path) -> dict[int, str]:
    import yaml

    text = _decode(path, "dataset file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"not valid YAML{at}; fix it", str(path)) from None
    names: Any = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise InputError(
            "has no 'names' (a list of class names, or a mapping of class id to name)", str(path)
        )
    found: dict[int, str] = {}
    for key, name in names.items():
        key = int(key) if isinstance(key, str) and key.isdigit() else key
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise InputError(f"names: {key!r} is not a class id (0, 1, ...)", str(path))
        if isinstance(name, bool) or not isinstance(name, str | int):
            raise InputError(
                f"names: class {key} is {name!r}, not a name (YAML reads yes, no, on, off"
                " and null unquoted as other things: quote it)",
                str(path),
            )
        found[key] = str(name)
    if len(set(found.values())) < len(found):
        raise InputError("names: a name is given to two classes; one name per class", str(path))
    nc = data.get("nc")
    if isinstance(nc, int) and nc != len(found):
        raise InputError(f"nc is {nc}, but names lists {len(found)} classes", str(path))
    return dict(sorted(found.items()))


def _names_file(folder: Path) -> Path:
    for place in (folder, folder.parent, folder.parent.parent):
        for name in NAME_FILES:
            if (place / name).is_file():
                return place / name
    raise InputError(
        "no class names: add a classes.txt (one name a line, the first is class 0) or a"
        " data.yaml with names, here or in a folder above",
        str(folder),
    )


def _read_names(path: Path) -> dict[int, str]:
    """Class id → name from a ``classes.txt`` or a ``data.yaml`` (by its suffix)."""
    return _yaml_names(path) if path.suffix in (".yaml", ".yml") else _classes_txt(path)


class _Problem(Exception):
    """What is wrong with one image's labels (it becomes the image's ``problem``)."""


def _number(token: str, line: int) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _Problem(f"line {line}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise _Problem(f"line {line}: {token!r} is not a finite number")
    return value


def _edge(value: float, line: int, what: str) -> float:
    if not -EDGE_SLACK <= value <= 1 + EDGE_SLACK:
        raise _Problem(
            f"line {line}: the box's {what} is at {value:g}, outside the image (0 to 1: YOLO's"
            " values are fractions of the image's width and height)"
        )
    return min(max(value, 0.0), 1.0)


def _box(text: str, line: int, txt: Path, names: dict[int, str]) -> PixelBox:
    tokens = text.split()
    if len(tokens) != 5:
        more = (
            "; segmentation polygons and pose keypoints are not packed yet, only boxes"
            if len(tokens) > 5
            else ""
        )
        raise _Problem(f"line {line} has {len(tokens)} values, not 5 (class cx cy w h){more}")
    label, cx, cy, w, h = (_number(token, line) for token in tokens)
    if not label.is_integer():
        raise _Problem(f"line {line}: class {tokens[0]!r} is not a whole number")
    if int(label) not in names:
        raise _Problem(
            f"line {line}: class {int(label)} has no name (the names give {_ids(names)})"
        )
    if w <= 0 or h <= 0:
        raise _Problem(f"line {line}: the box is empty (w {w:g}, h {h:g})")
    for value, what in ((cx, "cx"), (cy, "cy"), (w, "w"), (h, "h")):
        if not 0 <= value <= 1:
            raise _Problem(
                f"line {line}: {what} is {value:g}, outside 0..1 (YOLO's values are fractions"
                " of the image's width and height)"
            )
    return PixelBox(
        x0=_edge(cx - w / 2, line, "left edge"),
        y0=_edge(cy - h / 2, line, "top edge"),
        x1=_edge(cx + w / 2, line, "right edge"),
        y1=_edge(cy + h / 2, line, "bottom edge"),
        label=int(label),
        ident=f"{txt}:{line}",
    )


def _ids(names: dict[int, str]) -> str:
    ids = sorted(names)
    contiguous = ids == list(range(ids[0], ids[0] + len(ids)))
    return f"{ids[0]} to {ids[-1]}" if contiguous else ", ".join(map(str, ids))


def _annotated(txt: Path, names: dict[int, str]) -> Annotated:
    lines = _decode(txt, "label file").splitlines()
    try:
        boxes = tuple(_box(text, n, txt, names) for n, text in enumerate(lines, 1) if text.strip())
    except _Problem as e:
        return Annotated(where=str(txt), problem=f"{txt}: {e}", normalized=True)
    return Annotated(boxes, where=str(txt), normalized=True)


def read(folder: Path, names: Path | None = None) -> Source:
    """The YOLO labels folder paired with SRC: ``lookup("a/x.jpg")`` reads
    ``folder/a/x.txt`` when asked (an image without one: no objects, ``Annotated()``).

    ``names``: the classes.txt or data.yaml to take the class names from, if not found
    beside ``folder`` (see the module). A label file that is not UTF-8 text is an
    ``InputError``; a line that is not a box inside the image is its image's ``problem``.
    ``listed`` is empty: a txt does not say its image's extension, so it names no file;
    ``unmatched`` gives the txts no image in SRC took."""
    if not folder.is_dir():
        raise InputError("not a folder (give the folder of YOLO .txt label files)", str(folder))
    names_file = names if names is not None else _names_file(folder)
    names_at = names_file.resolve()
    classes = _read_names(names_file)
    txts = {p.relative_to(folder).as_posix() for p in folder.rglob("*.txt")
            if p.name not in NAME_FILES and p.resolve() != names_at}  # fmt: skip
    matched: set[str] = set()
    if not txts:
        raise InputError(
            "no .txt label files here; give the labels folder that pairs with SRC (such as"
            " labels/train for images/train)",
            str(folder),
        )

    def lookup(rel: str) -> Annotated:
        txt = folder / PurePosixPath(rel).with_suffix(".txt")
        is_names = txt.name == names_file.name and txt.resolve() == names_at
        if is_names or not txt.is_file():
            return Annotated(normalized=True)
        matched.add(txt.relative_to(folder).as_posix())
        return _annotated(txt, classes)

    def unmatched() -> Iterator[str]:
        return (str(folder / rel) for rel in sorted(txts - matched))

    return Source(kind="yolo", where=str(folder), classes=classes, lookup=lookup,
                  unmatched=unmatched)  # fmt: skip
