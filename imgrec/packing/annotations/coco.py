"""COCO instances and keypoints files (``instances_*.json``, ``person_keypoints_*.json``):
``images`` (id, file_name, width, height), ``annotations`` (id, image_id, category_id,
bbox [x, y, width, height] in pixels, iscrowd, area, segmentation, keypoints) and
``categories`` (id, name, keypoints' names).

The file is streamed, never held: a first pass reads ``images`` into an index on disk
(``coco_index``) and ``categories`` into memory, a second the annotations, each checked and
its box written to the index; the arrays may come in any order. ``lookup`` then reads one
image's boxes from the index. COCO's boxes are in the continuous pixel coordinates the
``Annotated`` boxes use, so a box is (x, y, x + width, y + height) as it is.

Each annotation is checked (``coco_checks``); segmentations are kept with their boxes in
the index and packed as instance masks (``instance_masks``). Keypoints are indexed with
their box (``PixelBox.points``) and packed; ``Source.keypoints`` names each category's.
"""

from __future__ import annotations

import shutil
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import ijson
from ijson.common import ObjectBuilder

from ...core.errors import InputError
from . import MAX_CLASS_ID, Annotated, PixelBox, Source
from .coco_checks import Category, Checks, Counts
from .coco_index import LOOKUP, Duplicate, Index, Writer, make_folder
from .json_stream import SPECIAL, Blocks, NotJSON, syntax_errors

ARRAYS = ("images", "annotations", "categories")
_ITEM = {"images.item": "image", "categories.item": "category"}


def read(path: Path, workdir: Path) -> Source:
    """The annotations of a COCO JSON file, indexed in a folder of their own in ``workdir``
    (removed by the Source's ``close``). ``InputError`` for what makes the file unusable; an
    annotation's problem makes its image's ``Annotated.problem``."""
    folder = make_folder(workdir)
    try:
        try:
            classes, counts, named = _index(path, folder, lenient=False)
        except NotJSON:
            # Python's json.dump writes NaN and Infinity, which yajl refuses: read it again
            # with those taken as numbers (the error stands if it was something else).
            for name in ("index.sqlite", LOOKUP):
                (folder / name).unlink(missing_ok=True)
            classes, counts, named = _index(path, folder, lenient=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    index = Index(folder)
    where = str(path)
    masked = counts.masks > 0

    def lookup(rel: str) -> Annotated | None:
        found = index.image(_normal(rel))
        if found is None:
            return None
        id, width, height, problem, stored = found
        boxes = tuple(
            PixelBox(x0, y0, x1, y1, label, f"annotation id {ident}", area, bool(crowd),
                     points=() if points is None else tuple(array("d", points)),
                     shape=shape)
            for x0, y0, x1, y1, label, ident, area, crowd, points, shape in stored
        )  # fmt: skip
        return Annotated(boxes, width, height, str(id), where, problem=problem, masked=masked)

    return Source(
        "coco", where, classes, lookup=lookup, listed=index.listed, close=index.close,
        warnings=_warnings(counts), keypoints=named, masked=masked,
    )  # fmt: skip


def _normal(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _warnings(counts: Counts) -> list[str]:
    out = []
    if counts.masks and counts.plain:
        out.append(
            f"{counts.plain:,} of {counts.masks + counts.plain:,} annotations have no"
            " segmentation: their instance masks are their boxes, filled"
        )
    if counts.unnamed:
        out.append(
            f"{counts.unnamed:,} annotations have keypoints, but their category names none"
            " (its 'keypoints' list): those keypoints are not packed; the boxes are"
        )
    return out


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as e:
        raise InputError(f"cannot read it ({e.strerror})", str(path)) from None


def _index(
    path: Path, folder: Path, lenient: bool
) -> tuple[dict[int, str], Counts, dict[int, tuple[str, ...]]]:
    writer = Writer(folder / "index.sqlite")
    try:
        with _open(path) as f:
            blocks = Blocks(f, lenient)
            with syntax_errors(blocks, str(path)):
                shapes, categories = _first_pass(ijson.parse(blocks, use_float=True), writer, path)
        _check_shapes(shapes, path)
        ids, widths, heights = array("q"), array("q"), array("q")
        for id, width, height in writer.sizes():
            ids.append(id)
            widths.append(width or 0)
            heights.append(height or 0)
        checks = Checks(str(path), categories, SPECIAL if lenient else {})
        counts = Counts()
        with _open(path) as f, syntax_errors(blocks := Blocks(f, lenient), str(path)):
            items = ijson.items(blocks, "annotations.item", use_float=True)
            for seq, item in enumerate(items, 1):
                if "categories" not in shapes:
                    raise InputError("has annotations but no 'categories' array", str(path))
                aid, iid = _ids(item, seq, path)
                k = bisect_left(ids, iid)
                if k == len(ids) or ids[k] != iid:
                    raise InputError(
                        f"annotation id {aid} is of image id {iid}, which 'images' does not list",
                        str(path),
                    )
                size = (heights[k] or None, widths[k] or None)
                box, problem = checks.annotation(item, aid, size, counts)
                if problem is not None:
                    writer.problem(iid, problem)
                elif box is not None:
                    writer.box(iid, seq, box)
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    classes = {id: c.name for id, c in sorted(categories.items())}
    named = {id: c.names for id, c in sorted(categories.items()) if c.names}
    return classes, counts, named


def _first_pass(
    events: Any, writer: Writer, path: Path
) -> tuple[dict[str, str], dict[int, Category]]:
    """The JSON type of each top-level array's value (its first event), the images written
    to the index, and the categories."""
    shapes: dict[str, str] = {}
    categories: dict[int, Category] = {}
    numbers = {"images.item": 0, "categories.item": 0}
    builder: ObjectBuilder | None = None
    building = ""
    for prefix, event, value in events:
        if builder is not None:
            builder.event(event, value)
            if prefix == building and event == "end_map":
                numbers[building] += 1
                if building == "images.item":
                    _image(builder.value, numbers[building], writer, path)
                else:
                    _category(builder.value, numbers[building], categories, path)
                builder = None
        elif prefix == "images.item" or prefix == "categories.item":
            if event != "start_map":
                raise InputError(
                    f"{_ITEM[prefix]} number {numbers[prefix] + 1} is not an object", str(path)
                )
            builder, building = ObjectBuilder(), prefix
            builder.event(event, value)
        elif prefix == "":
            if event not in ("start_map", "map_key", "end_map"):
                raise InputError(
                    "is not a COCO dataset: it holds a JSON array or value, not an object with"
                    " 'images', 'annotations' and 'categories' (a list of detections is a"
                    " COCO results file)",
                    str(path),
                )
        elif prefix in ARRAYS and prefix not in shapes:
            shapes[prefix] = event
    return shapes, categories


def _check_shapes(shapes: dict[str, str], path: Path) -> None:
    for name in ARRAYS:
        shape = shapes.get(name)
        if shape is None and name == "images":
            raise InputError("has no 'images' array naming the images", str(path))
        if shape is None and name == "annotations":
            raise InputError(
                "has no 'annotations' array (a COCO image-info file, such as test-dev's, has"
                ' none; for images without objects, give "annotations": [])',
                str(path),
            )
        if shape not in (None, "start_array"):
            raise InputError(f"'{name}' is not an array", str(path))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: object) -> int | None:
    """A width or height the file states: a whole number above 0, or None."""
    return value if _is_int(value) and value > 0 else None


def _image(item: dict[str, Any], number: int, writer: Writer, path: Path) -> None:
    id, name = item.get("id"), item.get("file_name")
    if not _is_int(id):
        raise InputError(f"image number {number} has no integer 'id'", str(path))
    if not isinstance(name, str) or not _normal(name):
        raise InputError(f"image id {id} has no 'file_name'", str(path))
    name = _normal(name)
    width, height = item.get("width"), item.get("height")
    try:
        writer.image(id, name, _size(width), _size(height))
    except Duplicate as d:
        what = f"image id {id}" if d.id == id else f'"{name}"'
        raise InputError(
            f'{what} is listed twice, as image id {d.id} "{d.file_name}" and image id {id}'
            f' "{name}" (an image annotated twice or listed twice): list each image once',
            str(path),
        ) from None
    if (width, height) != (_size(width), _size(height)):
        writer.problem(
            id,
            f"{path}: image id {id} has width {width!r} and height {height!r}, not whole"
            " numbers above 0; correct them or leave them out",
        )


def _category(
    item: dict[str, Any], number: int, categories: dict[int, Category], path: Path
) -> None:
    id, name, keypoints = item.get("id"), item.get("name"), item.get("keypoints")
    if not _is_int(id) or not isinstance(name, str):
        raise InputError(f"category number {number} has no integer 'id' and 'name'", str(path))
    if not 0 <= id <= MAX_CLASS_ID:
        raise InputError(
            f'category id {id} ("{name}") is outside 0..{MAX_CLASS_ID}: readers take class ids'
            " as int32, with -1 for padding; renumber the category (and its annotations)",
            str(path),
        )
    if id in categories:
        raise InputError(
            f'category id {id} is listed twice, as "{categories[id].name}" and "{name}"', str(path)
        )
    if not isinstance(keypoints, list):
        categories[id] = Category(name, None)
        return
    if not all(isinstance(k, str) for k in keypoints):
        raise InputError(f"category id {id}'s 'keypoints' are not a list of names", str(path))
    categories[id] = Category(name, len(keypoints), tuple(keypoints))


def _ids(item: Any, seq: int, path: Path) -> tuple[int, int]:
    if not isinstance(item, dict) or not _is_int(item.get("id")):
        raise InputError(f"annotation number {seq} has no integer 'id'", str(path))
    if not _is_int(item.get("image_id")):
        raise InputError(f"annotation id {item['id']} has no integer 'image_id'", str(path))
    return item["id"], item["image_id"]
