"""The dataset manifest (``manifest.json``): one typed reader and one writer.

The manifest is written last, atomically: its presence means the dataset is complete. It
is input like any other when read back: every field is checked before it is trusted, and a
manifest from a newer imgrec (a higher ``format_version``) is refused with the version to
install.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.errors import InputError
from ..core.storage import Folder, Location, join
from .layout import MANIFEST
from .options import PackOptions
from .stats import Stats

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest lists it (``file`` and ``index`` are names in the folder)."""

    file: str
    records: int
    bytes: int
    sha256: str
    index: str
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file": self.file,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "index": self.index,
        }
        if self.split is not None:
            d["split"] = self.split
        return d


@dataclass(frozen=True)
class Note:
    """A source file and what happened to it (why it was skipped, or transcoded)."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class SplitInfo:
    ratio: float
    records: int
    labels: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "records": self.records, "labels": dict(self.labels)}


@dataclass(frozen=True)
class AnnotationInfo:
    """What a dataset packed with annotations says of them: the files read (kind, path),
    the object classes (the dataset's own ids), the per-image columns and their types, and
    what the files hold that was not packed."""

    sources: list[tuple[str, str]]
    classes: dict[int, str]
    columns: dict[str, str]
    warnings: list[str]
    digest: str = ""  # sha256 of every image's annotations as joined, in listing order
    masks: bool = False  # every record carries a semantic mask (--masks)
    # The classes that name keypoints (class id -> names); the records then carry K = the
    # longest list's length per object. Empty: no keypoints (and no key in the manifest).
    keypoints: dict[int, list[str]] = field(default_factory=dict)

    @property
    def points(self) -> int:
        """K, the keypoints per object in the records (0: none)."""
        return max((len(n) for n in self.keypoints.values()), default=0)

    # every object has an instance mask (image/object/mask): the COCO file has segmentations
    instance_masks: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "sources": [{"kind": kind, "path": path} for kind, path in self.sources],
            "classes": {str(i): name for i, name in sorted(self.classes.items())},
            "columns": dict(self.columns),
            "warnings": list(self.warnings),
            "digest": self.digest,
            "masks": self.masks,
            **({"instance_masks": True} if self.instance_masks else {}),
        }
        if self.keypoints:
            out["keypoints"] = {str(i): list(n) for i, n in sorted(self.keypoints.items())}
        return out


@dataclass(frozen=True)
class Manifest:
    """What a packed dataset holds and how it was made."""

    source: str
    options: PackOptions
    labels: list[str]
    shards: list[ShardEntry]
    ignored: int
    skipped: list[Note]
    transcoded: list[Note]
    stats: Stats | None  # None only in manifests made by hand: then little is known
    splits: dict[str, SplitInfo] | None = None
    annotations: AnnotationInfo | None = None  # packed with annotations: what of them
    imgrec: str = __version__  # the version that wrote it
    format_version: int = FORMAT_VERSION

    @property
    def records(self) -> int:
        return self.stats.records if self.stats else sum(s.records for s in self.shards)

    def split_warnings(self) -> list[str]:
        """Splits whose share of a class is further from the ratio asked for than chance
        makes likely (three standard deviations of a binomial draw, plus one image)."""
        if not self.splits or self.stats is None:
            return []
        found = []
        for label, n in self.stats.labels.items():
            for name, split in self.splits.items():
                got, expected = split.labels.get(label, 0), n * split.ratio
                slack = 3 * math.sqrt(n * split.ratio * (1 - split.ratio)) + 1
                if abs(got - expected) > slack:
                    found.append(
                        f"split {name} holds {got} of the {n} {label!r} images ({got / n:.0%});"
                        f" {split.ratio:.0%} was asked"
                    )
        return found

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "imgrec": self.imgrec,
            "format_version": self.format_version,
            "source": self.source,
            "options": self.options.recorded(),
            "records": self.records,
            "labels": list(self.labels),
            "shards": [s.to_dict() for s in self.shards],
            "ignored": self.ignored,
            "skipped": [s.to_dict() for s in self.skipped],
            "transcoded": [t.to_dict() for t in self.transcoded],
        }
        if self.stats is not None:
            d["stats"] = self.stats.to_dict()
        if self.splits is not None:
            d["splits"] = {name: s.to_dict() for name, s in self.splits.items()}
        if self.annotations is not None:
            d["annotations"] = self.annotations.to_dict()
        return d


def write(out: Folder, manifest: Manifest) -> None:
    # A file name that is not valid UTF-8 (kept as lone surrogates) is written as a
    # \udcXX escape, which is valid JSON and reads back to the same name.
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n"
    out.write(MANIFEST, text.encode("utf-8", "backslashreplace"))


def read(folder: Location) -> Manifest | None:
    """The manifest of a dataset folder (local or URL), or None if it has none."""
    where = join(folder, MANIFEST)
    try:
        data = Folder(folder).read_if_present(MANIFEST)
    except OSError as e:
        raise InputError(f"cannot read the manifest ({e.strerror or e})", str(where)) from None
    if data is None:
        return None
    try:
        parsed = json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise InputError(f"cannot read the manifest ({e})", str(where)) from None
    return from_dict(parsed, str(where))


def read_manifest(folder: str | Location) -> Manifest:
    """The manifest of the dataset in ``folder`` (a local folder or a URL)."""
    at = folder if isinstance(folder, Path) else Path(folder) if "://" not in folder else folder
    m = read(at)
    if m is None:
        raise InputError("no manifest.json here: not a dataset packed by imgrec", str(folder))
    return m


def from_dict(d: Any, where: str) -> Manifest:
    """A Manifest from parsed JSON, every field checked (``where`` names the file in errors)."""
    if not isinstance(d, dict) or not isinstance(d.get("shards"), list):
        raise InputError("not an imgrec manifest (no shard list)", where)
    version = d.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"written by imgrec {d.get('imgrec', '?')} in manifest format {version}; this imgrec"
            f" ({__version__}) reads format {FORMAT_VERSION}: upgrade to imgrec"
            f" {d.get('imgrec', 'newer')} or later (pip install -U imgrec)",
            where,
        )
    check = _Checker(where)
    shards = [check.shard(s, f"shards[{i}]") for i, s in enumerate(d["shards"])]
    splits = None
    if d.get("splits") is not None:
        splits = {
            check.text(name, "splits"): check.split(s, f"splits.{name}")
            for name, s in check.mapping(d["splits"], "splits").items()
        }
    return Manifest(
        source=check.text(d.get("source", ""), "source"),
        options=check.options(d.get("options", {})),
        labels=[check.text(n, "labels") for n in check.array(d.get("labels", []), "labels")],
        shards=shards,
        ignored=check.count(d.get("ignored", 0), "ignored"),
        skipped=[check.note(n, "skipped") for n in check.array(d.get("skipped", []), "skipped")],
        transcoded=[
            check.note(n, "transcoded") for n in check.array(d.get("transcoded", []), "transcoded")
        ],
        stats=check.stats(d.get("stats")),
        splits=splits,
        annotations=None if d.get("annotations") is None else check.annotations(d["annotations"]),
        imgrec=str(d.get("imgrec", "")),
        format_version=version,
    )


@dataclass
class _Checker:
    """Field checks that name the manifest and the field in their error."""

    where: str

    def fail(self, key: str, what: str) -> InputError:
        return InputError(
            f"malformed manifest: {key} {what}; repack, or restore the file", self.where
        )

    def text(self, v: Any, key: str) -> str:
        if not isinstance(v, str):
            raise self.fail(key, f"should be a string, not {v!r:.40}")
        return v

    def count(self, v: Any, key: str) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise self.fail(key, f"should be a whole number >= 0, not {v!r:.40}")
        return v

    def array(self, v: Any, key: str) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(key, "should be a list")
        return v

    def mapping(self, v: Any, key: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(key, "should be an object")
        return v

    def file_name(self, v: Any, key: str) -> str:
        name = self.text(v, key)
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise self.fail(key, f"should be a file name inside the dataset folder, not {name!r}")
        return name

    def shard(self, v: Any, key: str) -> ShardEntry:
        s = self.mapping(v, key)
        for name in ("file", "records", "bytes", "sha256", "index"):
            if name not in s:
                raise self.fail(key, f"has no {name!r}")
        split = s.get("split")
        return ShardEntry(
            file=self.file_name(s["file"], f"{key}.file"),
            records=self.count(s["records"], f"{key}.records"),
            bytes=self.count(s["bytes"], f"{key}.bytes"),
            sha256=self.text(s["sha256"], f"{key}.sha256"),
            index=self.file_name(s["index"], f"{key}.index"),
            split=None if split is None else self.text(split, f"{key}.split"),
        )

    def note(self, v: Any, key: str) -> Note:
        n = self.mapping(v, key)
        return Note(self.text(n.get("path"), f"{key}.path"), self.text(n.get("reason"), key))

    def split(self, v: Any, key: str) -> SplitInfo:
        s = self.mapping(v, key)
        ratio = s.get("ratio")
        if not isinstance(ratio, (int, float)):
            raise self.fail(key, "has no ratio")
        labels = self.mapping(s.get("labels", {}), f"{key}.labels")
        return SplitInfo(
            ratio,
            self.count(s.get("records"), f"{key}.records"),
            {self.text(k, key): self.count(c, key) for k, c in labels.items()},
        )

    def options(self, v: Any) -> PackOptions:
        try:
            return PackOptions.from_recorded(self.mapping(v, "options"))
        except (TypeError, ValueError) as e:
            raise self.fail("options", f"cannot be read ({e})") from None

    def annotations(self, v: Any) -> AnnotationInfo:
        d = self.mapping(v, "annotations")
        sources = []
        for i, src in enumerate(self.array(d.get("sources", []), "annotations.sources")):
            src = self.mapping(src, f"annotations.sources[{i}]")
            key = f"annotations.sources[{i}]"
            sources.append((self.text(src.get("kind"), key), self.text(src.get("path"), key)))
        classes = {}
        for key, name in self.mapping(d.get("classes", {}), "annotations.classes").items():
            if not key.lstrip("-").isdigit():
                raise self.fail("annotations.classes", f"has a class id {key!r}, not a number")
            classes[int(key)] = self.text(name, f"annotations.classes.{key}")
        columns = {
            self.text(k, "annotations.columns"): self.text(t, f"annotations.columns.{k}")
            for k, t in self.mapping(d.get("columns", {}), "annotations.columns").items()
        }
        warned = self.array(d.get("warnings", []), "annotations.warnings")
        return AnnotationInfo(
            sources,
            classes,
            columns,
            [self.text(w, "annotations.warnings") for w in warned],
            self.text(d.get("digest", ""), "annotations.digest"),
            masks=d.get("masks") is True,
            keypoints=self._keypoints(d.get("keypoints", {})),
            instance_masks=d.get("instance_masks") is True,
        )

    def _keypoints(self, v: Any) -> dict[int, list[str]]:
        out = {}
        for key, names in self.mapping(v, "annotations.keypoints").items():
            if not key.lstrip("-").isdigit():
                raise self.fail("annotations.keypoints", f"has a class id {key!r}, not a number")
            where = f"annotations.keypoints.{key}"
            out[int(key)] = [self.text(n, where) for n in self.array(names, where)]
        return out

    def _objects(self, d: dict[str, Any]) -> None:
        for key in ("records", "objects", "without_objects"):
            self.count(d.get(key), f"stats.objects.{key}")
        for name, n in self.mapping(d.get("by_class"), "stats.objects.by_class").items():
            self.count(n, f"stats.objects.by_class.{name}")
        if "keypoints" in d:
            points = self.mapping(d["keypoints"], "stats.objects.keypoints")
            for key in ("records", "labelled", "visible"):
                self.count(points.get(key), f"stats.objects.keypoints.{key}")
        for key in ("box_width", "box_height"):
            span = self.array(d.get(key), f"stats.objects.{key}")
            numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in span)
            if span and (len(span) != 2 or not numbers):
                raise self.fail(f"stats.objects.{key}", "should be [min, max] or []")

    def stats(self, v: Any) -> Stats | None:
        if v is None:
            return None
        d = self.mapping(v, "stats")
        for key in ("records", "stored_bytes", "dense_bytes", "dense_uint8_bytes"):
            self.count(d.get(key), f"stats.{key}")
        if "oriented" in d:
            self.count(d["oriented"], "stats.oriented")
        for key in ("formats", "dtypes", "channels", "labels"):
            for name, n in self.mapping(d.get(key), f"stats.{key}").items():
                self.count(n, f"stats.{key}.{name}")
        for name, n in self.mapping(d.get("profiles", {}), "stats.profiles").items():
            self.count(n, f"stats.profiles.{name}")
        for key in ("height", "width"):
            span = self.array(d.get(key), f"stats.{key}")
            if span and (len(span) != 2 or not all(isinstance(x, int) for x in span)):
                raise self.fail(f"stats.{key}", "should be [min, max] or []")
        if "objects" in d:
            self._objects(self.mapping(d["objects"], "stats.objects"))
        if "masks" in d:
            masks = self.mapping(d["masks"], "stats.masks")
            self.count(masks.get("records"), "stats.masks.records")
            for name, n in self.mapping(masks.get("images_by_class"), "stats.masks").items():
                self.count(n, f"stats.masks.images_by_class.{name}")
        stats = Stats.from_dict(d)
        if "oriented" not in d:  # from before imgrec counted them: any record may be
            stats.oriented = stats.records
        return stats
