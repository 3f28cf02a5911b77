"""Pascal VOC XML: one ``<annotation>`` file per image, as the VOC devkit and labelImg write
them (``VOCdevkit/VOC2012/Annotations/2007_000027.xml``).

An image's XML is found by the image's path relative to SRC: ``train/cat.jpg`` is
``FOLDER/train/cat.xml`` (VOC keeps them flat: ``2007_000027.jpg`` is
``Annotations/2007_000027.xml``). A ``<filename>`` in the XML must name the same stem.

VOC's ``<bndbox>`` corners are 1-based and inclusive: ``xmin=1, xmax=10`` covers the first
ten pixel columns, so its box is ``x0 = xmin - 1, x1 = xmax`` in the continuous coordinates
of ``annotations``. Class ids are 1, 2, ... in sorted name order (0 is background in the
TensorFlow Object Detection API's label maps), or ``labels[i]`` is id ``i + 1``.

Parsed with the standard library's ElementTree: its expat refuses entity expansion
beyond a small amplification ("billion laughs") and it never fetches external entities.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ...core.errors import InputError
from . import Annotated, PixelBox, Source

CORNERS = ("xmin", "ymin", "xmax", "ymax")


def _parse(xml: Path) -> ET.Element:
    """The ``<annotation>`` root of one file; a file that is not one is the run's error."""
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        line, _ = e.position
        reason = str(e).rsplit(": line ", 1)[0]
        raise InputError(
            f"not well-formed XML at line {line} ({reason}); fix or remove this file",
            str(xml),
        ) from None
    except OSError as e:
        raise InputError(f"cannot read the XML ({e.strerror or e})", str(xml)) from None
    if root.tag != "annotation":
        raise InputError(
            f"the root element is <{root.tag}>, not <annotation>: not a Pascal VOC"
            " annotation; remove it from the annotations folder",
            str(xml),
        )
    return root


class _Problem(Exception):
    """What is wrong with one image's annotations (it becomes the image's ``problem``)."""


def _text(parent: ET.Element, tag: str) -> str | None:
    """The stripped text of ``parent``'s first ``tag`` child; None when there is none."""
    child = parent.find(tag)
    return None if child is None else (child.text or "").strip()


def _filename(root: ET.Element) -> str | None:
    """``<filename>``'s last part: some tools write a path there, even a Windows one."""
    text = _text(root, "filename")
    return re.split(r"[\\/]", text)[-1] if text else None


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError("not a folder (give the folder of Pascal VOC .xml files)", str(folder))
    found = sorted(p for p in folder.rglob("*.xml") if p.is_file())
    if not found:
        raise InputError(
            "no .xml files here; give the folder of Pascal VOC annotations"
            " (such as VOCdevkit/VOC2012/Annotations)",
            str(folder),
        )
    return found


class _Survey:
    """The first pass: every XML parsed once, for class names, the images named and what
    is not packed (nothing parsed is kept)."""

    def __init__(self, folder: Path) -> None:
        self.xmls: set[str] = set()  # relative to the folder, posix
        self.images: list[str] = []  # what the <filename>s name, where they fit the XML's name
        self.names: set[str] = set()
        segmented = parts = 0
        for xml in _files(folder):
            root = _parse(xml)
            rel = xml.relative_to(folder)
            self.xmls.add(rel.as_posix())
            filename = _filename(root)
            if filename and PurePosixPath(filename).stem == xml.stem:
                self.images.append((rel.parent / filename).as_posix())
            segmented += _text(root, "segmented") == "1"
            for obj in root.findall("object"):
                name = _text(obj, "name")
                if name:
                    self.names.add(name)
                parts += obj.find("part") is not None
        self.warnings = []
        if segmented:
            self.warnings.append(
                f"{segmented} XML file(s) say <segmented>1</segmented>: their masks"
                " (SegmentationObject, SegmentationClass) are not packed yet"
            )
        if parts:
            self.warnings.append(
                f"{parts} object(s) have <part> boxes (VOC's person layout): parts are not"
                " packed, only the object's own box"
            )


def _number(box: ET.Element, n: int, tag: str) -> float:
    """A ``<bndbox>`` corner."""
    text = _text(box, tag)
    if not text:
        raise _Problem(f"object {n}'s <bndbox> has no <{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise _Problem(f"object {n}'s <{tag}> is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise _Problem(f"object {n}'s <{tag}> is {text!r}, not a finite number")
    return value


def _flag(obj: ET.Element, n: int, tag: str) -> bool:
    """``<difficult>`` or ``<truncated>``: 0 or 1, absent or empty meaning 0."""
    text = _text(obj, tag)
    if text not in (None, "", "0", "1"):
        raise _Problem(f"object {n}'s <{tag}> is {text!r}, not 0 or 1")
    return text == "1"


def _size(root: ET.Element, tag: str) -> int | None:
    """``<size>``'s width or height; 0 or absent is unknown (tools write 0 when they did not
    read the image)."""
    size = root.find("size")
    text = None if size is None else _text(size, tag)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _Problem(f"<size>'s <{tag}> is {text!r}, not a number") from None
    if not value.is_integer() or value < 0:
        raise _Problem(f"<size>'s <{tag}> is {text!r}, not a whole number of pixels")
    return int(value) or None


def _box(obj: ET.Element, n: int, xml: Path, ids: dict[str, int]) -> PixelBox:
    """One ``<object>`` as a box in continuous pixel coordinates."""
    name = _text(obj, "name")
    if not name:
        raise _Problem(f"object {n} has no <name>")
    if name not in ids:
        raise _Problem(f"object {n}'s class {name!r} is not in the labels list; add it there")
    box = obj.find("bndbox")
    if box is None:
        raise _Problem(f"object {n} has no <bndbox>")
    xmin, ymin, xmax, ymax = (_number(box, n, tag) for tag in CORNERS)
    if xmax <= xmin or ymax <= ymin:
        raise _Problem(
            f"object {n}'s <bndbox> is empty: xmin {xmin:g}, xmax {xmax:g}, ymin {ymin:g},"
            f" ymax {ymax:g} (each max must be above its min)"
        )
    return PixelBox(
        x0=xmin - 1,
        y0=ymin - 1,
        x1=xmax,
        y1=ymax,
        label=ids[name],
        ident=f"{xml} object {n}",
        difficult=_flag(obj, n, "difficult"),
        truncated=_flag(obj, n, "truncated"),
    )


def _annotated(xml: Path, rel: str, ids: dict[str, int]) -> Annotated:
    """One image's XML (parsed again: the first pass keeps nothing)."""
    root = _parse(xml)
    try:
        filename = _filename(root)
        if filename and PurePosixPath(filename).stem != PurePosixPath(rel).stem:
            raise _Problem(
                f"<filename> is {filename!r}, but this XML is found for image {rel!r} by its"
                " name; rename one of them or correct <filename>"
            )
        width, height = _size(root, "width"), _size(root, "height")
        boxes = tuple(_box(obj, n, xml, ids) for n, obj in enumerate(root.findall("object"), 1))
    except _Problem as e:
        return Annotated(where=str(xml), problem=f"{xml}: {e}")
    return Annotated(boxes, width, height, where=str(xml))


def read(folder: Path, labels: list[str] | None = None) -> Source:
    """The VOC XMLs under ``folder`` (recursively), read once for their class names;
    ``lookup`` parses an image's XML again when asked.

    Classes: ``labels[i]`` is id ``i + 1`` (a name not in it is the image's problem), else
    every name found, sorted, from 1. A file that does not parse, or is not an
    ``<annotation>``, is an ``InputError`` naming it and the line; an object without a
    usable box, name or flag is its image's ``problem``. Boxes are not checked against
    ``<size>``: the image's own size is the truth, and it is checked when the image is
    loaded."""
    if labels is not None and len(set(labels)) < len(labels):
        raise InputError("the labels list names a class twice")
    survey = _Survey(folder)
    names = list(labels) if labels is not None else sorted(survey.names)
    ids = {name: i for i, name in enumerate(names, 1)}
    xmls = survey.xmls
    matched: set[str] = set()

    def lookup(rel: str) -> Annotated | None:
        path = PurePosixPath(rel)
        key = (path.parent / f"{path.stem}.xml").as_posix()
        if key not in xmls:
            return None
        matched.add(key)
        return _annotated(folder / key, rel, ids)

    def listed() -> Iterator[str]:
        return iter(survey.images)

    def unmatched() -> Iterator[str]:
        return (str(folder / key) for key in sorted(xmls - matched))

    return Source(
        kind="voc",
        where=str(folder),
        classes={i: name for name, i in ids.items()},
        lookup=lookup,
        listed=listed,
        unmatched=unmatched,
        warnings=survey.warnings,
    )
