"""What the converters share: numbering labels and naming records as a pack's walk does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core import storage
from ...core.errors import InputError
from ...core.storage import Location
from ...format.options import PackOptions
from ..discover import Item, Ref, Walk, read_labels_file


@dataclass(frozen=True)
class Found:
    """One record as a converter lists it."""

    ref: Ref
    name: str  # its file name, if the source has one ("" otherwise)
    label: int | None  # the class number the source gives (None: unlabelled)
    text: str  # the class name the source gives ("" when it gives none)
    size: int  # bytes of the record (plans the shard count)


def walk_of(container: Location, found: Sequence[Found], opts: PackOptions, ignored: int) -> Walk:
    """The records as a Walk: labels numbered as the source numbers them, named by a
    --labels file (one name per line, in number order), else by the names the records
    carry, else by their numbers; file names made unique."""
    names: list[str] | None = None
    if opts.labels_file:
        names = read_labels_file(Path(opts.labels_file))
    top = max((f.label for f in found if f.label is not None), default=-1)
    if names is not None and top >= len(names):
        raise InputError(
            f"the records use class number {top}, but the --labels file names"
            f" {len(names)} classes; add the missing names",
            opts.labels_file,
        )
    if names is None:
        texts: dict[int, str] = {}
        for f in found:
            if f.label is not None and f.text and f.label not in texts:
                texts[f.label] = f.text
        names = [texts.get(n, str(n)) for n in range(top + 1)]
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
        label = f.label if f.label is not None and f.label >= 0 else -1
        text = names[label] if label >= 0 else ""
        items.append(Item(container, rel, label, text, (f.size, mtime), f.ref))
    return Walk(items, names, ignored, [])


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns
