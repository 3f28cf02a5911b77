"""Integrity: is every byte of a dataset what it should be? No TensorFlow needed.

Checks both CRCs of every record, that each record parses and follows the schema (raw byte
lengths equal shape x dtype size; an encoded image's header matches its declared format and
size; the label is a class or -1), that index files match the framing, and, with a
manifest, every shard's size, record count and sha256. ``against`` also re-reads the source
folder and checks each record against its source file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..core import storage
from ..core.errors import InputError
from ..core.progress import Progress, no_progress
from ..core.storage import Location
from ..format import schema
from ..format.framing import frames, read_index
from ..format.layout import index_for
from ..format.manifest import Manifest, ShardEntry
from ..format.options import PackOptions
from ..format.record_check import Problem, check_record
from ..format.schema import Record
from ..images import loading
from ..packing.discover import Item, walk
from ..packing.encode import Skipped
from ..packing.executors.local import load_in_order
from ..packing.tree import too_long_reason
from ..reading.paths import Paths, as_list, open_dataset, resolve


@dataclass
class Report:
    shards: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    checked_against: str | None = None
    matched: int = 0  # records confirmed against their source
    changed: list[str] = field(default_factory=list)  # "path: what differs"
    removed: list[str] = field(default_factory=list)  # records whose source is gone
    added: list[str] = field(default_factory=list)  # images in the source, not in the dataset

    @property
    def ok(self) -> bool:
        return not (self.problems or self.changed or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "shards": self.shards,
            "records": self.records,
            "problems": [
                {"shard": p.shard, "record": p.record, "offset": p.offset, "problem": p.message}
                for p in self.problems
            ],
            "against": self.checked_against,
            "matched": self.matched,
            "changed": self.changed,
            "removed": self.removed,
            "added": self.added,
        }


def verify(
    paths: Paths,
    against: str | Path | None = None,
    progress: Progress | None = None,
    decode: bool = False,
) -> Report:
    """Check every byte of these datasets, shard files or globs (see the module's text).
    ``decode`` also decodes every encoded image in full: image data damaged past a sound
    header is found before training meets it (at the cost of a decode per image)."""
    note = progress or no_progress
    report = Report()
    expected: dict[str, ShardEntry] = {}  # shard location -> its manifest entry
    manifests: list[tuple[Location, Manifest]] = []
    files: list[Location] = []
    for p in as_list(paths):
        where, m = open_dataset(p)
        if m is None:
            files.extend(resolve(p))
            continue
        manifests.append((where, m))
        for s in m.shards:
            path = storage.join(where, s.file)
            expected[str(path)] = s
            if storage.size(path) is not None:
                files.append(path)
            else:
                report.problems.append(Problem(str(path), None, None, "missing (in the manifest)"))
    records: dict[str, Record] = {}
    sizes = [storage.size(f) or 0 for f in files]
    done = 0
    for shard, size in zip(files, sizes, strict=True):
        report.shards += 1
        entry = expected.get(str(shard))
        report.records += _check_shard(shard, size, entry, report, records, decode)
        done += size
        note("verify", done, sum(sizes))
    if against is not None:
        if len(manifests) != 1:
            raise InputError("--against needs exactly one dataset folder with its manifest")
        _check_against(Path(against), manifests[0], records, report, note)
    return report


def _check_shard(
    shard: Location,
    size: int,
    entry: ShardEntry | None,
    report: Report,
    records: dict[str, Record],
    decode: bool = False,
) -> int:
    def problem(message: str, record: int | None = None, offset: int | None = None) -> None:
        report.problems.append(Problem(str(shard), record, offset, message))

    framing: list[tuple[int, int]] = []
    for frame in frames(shard):
        if frame.data is not None:
            framing.append((frame.offset, frame.size))
        if frame.problem is not None:
            problem(frame.problem, frame.index, frame.offset)
            continue
        assert frame.data is not None
        rec, issue = check_record(frame.data, decode)
        if issue is None and rec is not None:
            issue = _label_issue(rec) or _mask_issue(rec) or _object_mask_issue(rec)
        if issue is not None:
            problem(issue, frame.index, frame.offset)
        if rec is not None:
            records[rec.filename] = rec
    if entry is not None:
        if size != entry.bytes:
            problem(f"{size} bytes, the manifest says {entry.bytes}")
        if len(framing) != entry.records:
            problem(f"{len(framing)} records, the manifest says {entry.records}")
        if storage.file_sha256(shard) != entry.sha256:
            problem("sha256 differs from the manifest's: the file changed after packing")
    index = index_for(shard)
    if storage.size(index) is not None:
        try:
            listed = read_index(index)
        except InputError as e:
            problem(f"index {storage.name_of(index)}: {e}")
        else:
            if listed != framing:
                problem(
                    f"index {storage.name_of(index)} does not match the records"
                    " (rebuild: imgrec index)"
                )
    return len(framing)


def _label_issue(rec: Record) -> str | None:
    """The schema's classes are 0 and up, -1 being no class: a training loop would take a
    lower one as a class index (or fail on it), so it is a problem like a bad shape."""
    if rec.label >= -1:
        return None
    return f"image/class/label {rec.label} is not a class (0 or more, or -1 for unlabelled)"


def _mask_issue(rec: Record) -> str | None:
    """A semantic mask must be a PNG of one channel at the image's size."""
    if rec.mask is None:
        return None
    try:
        with Image.open(io.BytesIO(rec.mask)) as im:
            im.load()
            mode, size = im.mode, im.size
    except Exception as e:  # Pillow raises many types on damaged data
        return f"{schema.MASK} does not decode ({type(e).__name__}: {e})"
    if mode not in ("L", "P") or size != (rec.width, rec.height):
        return (
            f"{schema.MASK} is a {size[0]}x{size[1]} {mode} image; the image is"
            f" {rec.width}x{rec.height} (a mask is one class index per pixel, at its size)"
        )
    return None


def _object_mask_issue(rec: Record) -> str | None:
    """Each instance mask must be a PNG of one channel at the image's size."""
    masks = rec.objects.masks if rec.objects is not None else None
    for k, png in enumerate(masks or ()):
        try:
            with Image.open(io.BytesIO(png)) as im:
                im.load()
                kind, mode, size = im.format, im.mode, im.size
        except Exception as e:  # Pillow raises many types on damaged data
            return f"{schema.OBJECT_MASK} {k} does not decode ({type(e).__name__}: {e})"
        if kind != "PNG" or mode not in ("L", "1", "P") or size != (rec.width, rec.height):
            return (
                f"{schema.OBJECT_MASK} {k} is a {size[0]}x{size[1]} {mode} {kind}; the image is"
                f" {rec.width}x{rec.height} (a mask is a one-channel PNG at its size)"
            )
    return None


def _check_against(
    src: Path,
    dataset: tuple[Location, Manifest],
    records: dict[str, Record],
    report: Report,
    note: Progress,
) -> None:
    """Each record against its source file; sources added or removed since packing."""
    folder, m = dataset
    report.checked_against = str(src)
    opts: PackOptions = m.options
    found = walk(src, None, exclude=folder)
    on_disk = {item.rel: item for item in found.items}
    skipped = {s.path for s in m.skipped}
    report.removed = sorted(rel for rel in records if rel not in on_disk)
    unlisted = "in the source, but neither in the dataset nor listed as skipped"
    for rel in found.too_long:
        if rel not in records and rel not in skipped and _image_name(rel):
            reason = too_long_reason(storage.join(src, rel))
            report.changed.append(f"{rel}: {unlisted}, and it cannot be read ({reason})")
    for rel, item in on_disk.items():
        if rel in records or rel in skipped:
            continue
        try:
            loading.probe_file(item.path, opts.max_pixels)
        except loading.NotAnImage:
            continue
        except loading.SkipImage as e:
            # verify cannot check what it cannot read: not OK (a readable image the dataset
            # lacks is only listed, as added)
            report.changed.append(f"{rel}: {unlisted}, and it cannot be packed ({e})")
            continue
        report.added.append(rel)
    present: list[Item] = [on_disk[rel] for rel in records if rel in on_disk]
    loaded = load_in_order(present, opts.image_options(), opts.worker_count)
    for n, (item, result) in enumerate(loaded, 1):
        note("against", n, len(present))
        rec = records[item.rel]
        if isinstance(result, Skipped):
            report.changed.append(f"{item.rel}: the source now fails to load ({result.reason})")
        elif result.sha256 != rec.sha256:
            report.changed.append(f"{item.rel}: the source file changed (sha256 differs)")
        else:
            issue = _content_differs(rec, result)
            if issue:
                report.changed.append(f"{item.rel}: {issue}")
            else:
                report.matched += 1


def _image_name(rel: str) -> bool:
    return Path(rel).suffix.lower() in loading.IMAGE_EXTENSIONS


def _content_differs(rec: Record, loaded: loading.Loaded) -> str | None:
    stored = (rec.height, rec.width, rec.channels, rec.dtype)
    source = (loaded.height, loaded.width, loaded.channels, loaded.dtype)
    if stored != source:
        return f"record is {stored} (H, W, C, dtype), the source gives {source}"
    if rec.data == loaded.data:
        return None
    if rec.format == "png" and loaded.format == "png":
        # Transcoded: compare pixels, since another zlib may compress the same pixels
        # into other bytes.
        import numpy as np

        a = np.asarray(Image.open(io.BytesIO(rec.data)))
        b = np.asarray(Image.open(io.BytesIO(loaded.data)))
        return None if np.array_equal(a, b) else "stored pixels differ from the source's"
    return f"stored {rec.format} bytes differ from what the source gives"
