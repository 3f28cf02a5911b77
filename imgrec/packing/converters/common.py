"""What the converters share: numbering labels and naming records as a pack's walk does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core import storage
from ...core.errors import InputError
from ...core.storage import Location
from ...format.options import PackOptions
from ..annotations import Annotated
from ..discover import Item, Ref, Walk, read_labels_file


@dataclass(frozen=True)
class Found:
    """One record as a converter lists it."""

    ref: Ref
    name: str  # its file name, if the source has one ("" otherwise)
    label: int | None  # the class number the source gives (None: unlabelled)
    text: str  # the class name the source gives ("" when it gives none)
    size: int  # bytes of the record (plans the shard count)
    annotated: Annotated | None = None  # its objects, when the source has them


# The source's class numbers stay the classes' indices (inception's start at 1, 0 unused),
# the numbers no record uses listed by name too, while those are few: up to as many as the
# classes present plus this. A list up to a class number of 1,000,000,000 would hold that
# many names, in memory and in the manifest: such numbers are renumbered instead.
UNUSED_ALLOWED = 1000


def walk_of(container: Location, found: Sequence[Found], opts: PackOptions, ignored: int) -> Walk:
    """The records as a Walk: labels numbered as the source numbers them, named by a
    --labels file (one name per line, in number order), else by the names the records
    carry, else by their numbers; file names made unique. Numbers too sparse to list up to
    the largest are renumbered 0..K-1 in their order (see ``class_numbers``)."""
    numbers, names = class_numbers(found, opts)
    mtime = storage.stat(container)[1] if not isinstance(container, Path) else _mtime(container)
    seen: set[str] = set()
    items = []
    for n, f in enumerate(found):
        rel = f.name or f"{n:08d}"
        if rel in seen:
            rel = f"{rel}#{n}"
        seen.add(rel)
        # Negative numbers mean "no class" in other tools; the schema's is -1 (kept as -5,
        # say, a reader would take it for a class).
        label = numbers[f.label] if f.label is not None and f.label >= 0 else -1
        text = names[label] if label >= 0 else ""
        items.append(Item(container, rel, label, text, (f.size, mtime), f.ref, f.annotated))
    return Walk(items, names, ignored, [])


def class_numbers(found: Sequence[Found], opts: PackOptions) -> tuple[dict[int, int], list[str]]:
    """Each source class number's index, and the class names in index order.

    The source's numbers are kept when the numbers no record uses are at most as many as the
    classes present plus ``UNUSED_ALLOWED`` (or a --labels file names them); otherwise the
    classes present are numbered 0..K-1 in the order of their numbers, each named by its
    text or its source number. Memory and time follow the classes present, not the largest
    number."""
    texts: dict[int, str] = {}
    for f in found:
        if f.label is not None and f.label >= 0 and (f.label not in texts or not texts[f.label]):
            texts[f.label] = f.text
    top = max(texts, default=-1)
    if opts.labels_file:
        names = read_labels_file(Path(opts.labels_file))
        if top >= len(names):
            raise InputError(
                f"the records use class number {top}, but the --labels file names"
                f" {len(names)} classes; add the missing names",
                opts.labels_file,
            )
        return {n: n for n in texts}, names
    if top + 1 - len(texts) <= len(texts) + UNUSED_ALLOWED:
        return {n: n for n in texts}, [texts.get(n) or str(n) for n in range(top + 1)]
    present = sorted(texts)
    return {n: i for i, n in enumerate(present)}, [texts[n] or str(n) for n in present]


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns
