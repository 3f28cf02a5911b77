"""The annotations of a pack joined to its items: which files to read (``--annotations``,
and ``metadata.jsonl`` / ``metadata.csv`` at the top of SRC), and each item given what they
say of it, by its path relative to SRC. The annotations then travel with the item (through
spools, the plan, workers and Beam): nothing is looked up again while the shards are
written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ...core import spool
from ...core.errors import InputError
from ...core.spool import MEMORY, Store
from ...core.storage import Location
from ...format.manifest import AnnotationInfo
from ...format.options import PackOptions
from ..discover import Item, Walk, decode_item, encode_item
from . import Annotated, Source

FIELD_FILES = ("metadata.jsonl", "metadata.csv")  # Hugging Face imagefolder's names
BOX_KINDS = ("coco", "voc", "yolo")


def kind_of(path: Path) -> str:
    """What ``--annotations`` names: a COCO JSON file, or a folder of VOC XML or YOLO txt
    files (one per image)."""
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise InputError(
            "--annotations takes a COCO .json file, or a folder of Pascal VOC .xml or YOLO"
            " .txt files",
            str(path),
        )
    if not path.is_dir():
        raise InputError("--annotations: no such file or folder", str(path))
    suffixes = {p.suffix.lower() for p in path.rglob("*") if p.is_file()}
    found = [kind for kind, suffix in (("voc", ".xml"), ("yolo", ".txt")) if suffix in suffixes]
    if len(found) != 1:
        what = "both .xml and .txt files" if found else "no .xml or .txt file"
        raise InputError(
            f"--annotations: this folder holds {what}; give a folder of Pascal VOC .xml files"
            " or one of YOLO .txt files",
            str(path),
        )
    return found[0]


def _read(kind: str, path: Path, workdir: Path) -> Source:
    if kind == "coco":
        from . import coco

        return coco.read(path, workdir)
    if kind == "voc":
        from . import voc

        return voc.read(path)
    if kind == "yolo":
        from . import yolo

        return yolo.read(path)
    if kind == "masks":
        from . import masks

        return masks.read(path)
    from . import fields

    return fields.read(path)


@contextlib.contextmanager
def opened(src: Location, opts: PackOptions) -> Iterator[list[Source]]:
    """The annotation sources of this pack (none: it has no annotations), open while the
    block runs (a COCO file's index lives in a temporary folder until then)."""
    wanted: list[tuple[str, Path]] = []
    if opts.annotations:
        path = Path(opts.annotations)
        wanted.append((kind_of(path), path))
    if isinstance(src, Path):
        present = [src / name for name in FIELD_FILES if (src / name).is_file()]
        if len(present) > 1:
            raise InputError("SRC holds both metadata.jsonl and metadata.csv; keep one", str(src))
        wanted += [("fields", p) for p in present]
    if opts.masks:
        wanted.append(("masks", Path(opts.masks)))
    if not wanted:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="imgrec-annotations-") as work:
        sources: list[Source] = []
        try:
            for kind, path in wanted:
                sources.append(_read(kind, path, Path(work)))
            yield sources
        finally:
            for source in sources:
                source.close()


def attach(found: Walk, sources: Sequence[Source], src: Location, store: Store = MEMORY) -> Walk:
    """``found`` with each item's annotations, and what the dataset's annotations are
    (``found.annotations``). Every image an annotation file names must be in SRC; an image
    the files say nothing of has no objects (a negative)."""
    if not sources:
        return found
    boxes = [s for s in sources if s.kind in BOX_KINDS]
    classes = boxes[0].classes if boxes else {}
    keypoints = boxes[0].keypoints if boxes else {}
    items = store.values(encode_item, decode_item)
    walked: set[str] = set()
    digest = hashlib.sha256()
    for item in found.items:
        walked.add(item.rel)
        annotated = _merged(item, sources, classes, keypoints)
        digest.update(json.dumps([item.rel, annotated.to_json()]).encode() + b"\n")
        spool.append(items, replace(item, annotated=annotated))
    for source in sources:
        for path in source.unmatched():
            raise InputError(
                f"is the annotation file of an image that is not in SRC ({src}): no image"
                " there has its folder and name (with any extension); add the image, or"
                " rename or remove the file",
                path,
            )
    for source in sources:
        for rel in source.listed():
            if rel not in walked:
                raise InputError(
                    f"names the image {rel}, which is not in SRC ({src}) or was left out of"
                    " its walk (hidden, not a file); add it, or remove it from the file",
                    source.where,
                )
    columns = {name: kind for s in sources for name, kind in s.columns.items()}
    found.items = items
    found.annotations = AnnotationInfo(
        [(s.kind, s.where) for s in sources],
        dict(sorted(classes.items())),
        columns,
        [w for s in sources for w in s.warnings],
        digest.hexdigest(),
        masks=any(s.kind == "masks" for s in sources),
        keypoints={id: list(names) for id, names in sorted(keypoints.items())},
        instance_masks=any(s.masked for s in sources),
    )
    return found


def _merged(
    item: Item,
    sources: Sequence[Source],
    classes: dict[int, str],
    keypoints: dict[int, tuple[str, ...]],
) -> Annotated:
    """One Annotated from every source's word on the item: boxes from the box source
    (their class names set, and in a dataset with keypoints, how many each object has and
    the names of its class's), fields from the fields source."""
    # K keypoints per object in a dataset with them, even in a record without objects
    k = max((len(n) for n in keypoints.values()), default=0)
    merged = Annotated(boxed=any(s.kind in BOX_KINDS for s in sources), keypoints=k,
                       masked=any(s.masked for s in sources))  # fmt: skip
    for source in sources:
        said = source.lookup(item.rel)
        if said is None and source.kind == "fields":  # every record has every column
            problem = f"{source.where}: has no row for this image (every image needs one)"
            merged = replace(merged, problem=merged.problem or problem)
            continue
        if said is None:
            continue
        if source.kind == "fields":
            merged = replace(merged, fields=said.fields, problem=merged.problem or said.problem)
            continue
        if source.kind == "masks":
            merged = replace(merged, mask=said.mask, problem=merged.problem or said.problem)
            continue
        named = tuple(b.named(classes.get(b.label, str(b.label))) for b in said.boxes)
        merged = replace(said, boxes=named, fields=merged.fields, mask=merged.mask, boxed=True,
                         problem=merged.problem or said.problem)  # fmt: skip
        if keypoints:
            held = sorted({b.label for b in said.boxes} & keypoints.keys())
            merged = replace(merged, keypoints=k,
                             keypoint_names=tuple((c, keypoints[c]) for c in held))  # fmt: skip
    return merged
