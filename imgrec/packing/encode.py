"""Encode and write: one image into its serialized record, and one shard (plus its index)
from its images' records in plan order. Every executor writes shards with these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..format.framing import ShardWriter
from ..format.layout import index_for
from ..format.manifest import Note, ShardEntry
from ..format.schema import Record, serialize
from ..format.stats import Stats
from ..images import loading
from . import payloads
from .annotations import placing
from .discover import Item
from .sharding import ShardSpec


@dataclass(frozen=True)
class Packed:
    """One image ready for its shard: the serialized Example, and its fields (image bytes
    left out) for the statistics."""

    example: bytes
    record: Record
    stored: int  # bytes of the image payload
    note: str | None  # why the stored form differs from the source, if it does


@dataclass(frozen=True)
class Skipped:
    """An image that could not be packed, and why ("<code>: <detail>")."""

    reason: str


def load_or_skip(item: Item, opts: loading.ImageOptions) -> loading.Loaded | Skipped:
    """The item's image in its stored form, with every way that can fail turned into a
    Skipped reason."""
    try:
        return payloads.load_item(item, opts)
    except Exception as e:
        return skipped_for(e)


def skipped_for(e: Exception) -> Skipped:
    """Why an image is skipped, from what loading it raised."""
    if isinstance(e, loading.NotAnImage):
        return Skipped(str(loading.SkipImage("not-an-image")))
    if isinstance(e, loading.SkipImage):
        return Skipped(str(e))
    # a bug must cost one image, not the whole run
    return Skipped(str(loading.SkipImage("failed", f"{type(e).__name__}: {e}")))


def pack_one(item: Item, opts: loading.ImageOptions) -> Packed | Skipped:
    """Load one image and serialize its record."""
    return packed(item, load_or_skip(item, opts), opts)


def packed(
    item: Item, result: loading.Loaded | Skipped | Exception, opts: loading.ImageOptions
) -> Packed | Skipped:
    """The item's serialized record, from its stored form (or why it is skipped); its
    annotations placed on the stored pixels (``opts``: how they were made)."""
    if isinstance(result, Exception):
        result = skipped_for(result)
    if isinstance(result, Skipped):
        return result
    labels = item.ref.labels if item.ref is not None else ()
    placed = placing.Placed(None, ())
    if item.annotated is not None:
        try:
            placed = placing.place(item.annotated, result, opts)
        except placing.Misplaced as e:
            return Skipped(str(loading.SkipImage("bad-annotation", str(e))))
    fields = (
        result.format, result.height, result.width, result.channels, result.dtype,
        item.label, item.text, item.rel, result.sha256, result.orientation, labels,
        placed.objects, placed.fields, placed.mask, placed.mask_classes,
    )  # fmt: skip
    # for the statistics: the image bytes left out (and the masks: its classes say enough)
    objects = placed.objects
    if objects is not None and objects.masks is not None:
        objects = replace(objects, masks=None)
    rec = replace(Record(b"", *fields, profile=result.profile), mask=None, objects=objects)
    example = serialize(Record(result.data, *fields, icc=result.icc, profile=result.profile))
    return Packed(example, rec, len(result.data), result.note)


@dataclass(frozen=True)
class ShardResult:
    """A finished shard: what the journal and the manifest keep about it."""

    entry: ShardEntry
    skipped: list[Note]
    transcoded: list[Note]
    stats: Stats

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry.to_dict(),
            "skipped": [n.to_dict() for n in self.skipped],
            "transcoded": [n.to_dict() for n in self.transcoded],
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardResult:
        """Read back ``to_dict``'s output (raises KeyError/TypeError/ValueError if it is not)."""
        return cls(
            ShardEntry(**d["entry"]),
            [Note(**n) for n in d["skipped"]],
            [Note(**n) for n in d["transcoded"]],
            Stats.from_dict(d["stats"]),
        )


def write_shard(folder: Path, spec: ShardSpec, results: Iterable[Packed | Skipped]) -> ShardResult:
    """Write the shard ``spec`` (and its index) into the local ``folder``, atomically: the
    images' results come in plan order, one per item."""
    # items first: zip stops at their end without taking a result of the next shard
    named = ((item.rel, result) for item, result in zip(spec.items, results, strict=False))
    return write_records(folder, spec.name, spec.split, named)


def write_records(
    folder: Path, name: str, split: str | None, results: Iterable[tuple[str, Packed | Skipped]]
) -> ShardResult:
    """``write_shard`` of the shard ``name``, from each image's relative path and result."""
    skipped: list[Note] = []
    transcoded: list[Note] = []
    stats = Stats()
    with ShardWriter(folder / name) as writer:
        for rel, result in results:
            if isinstance(result, Skipped):
                skipped.append(Note(rel, result.reason))
                continue
            writer.write(result.example)
            stats.add(result.record, result.stored)
            if result.note:
                transcoded.append(Note(rel, result.note))
    info = writer.info
    entry = ShardEntry(name, info.records, info.bytes, info.sha256, index_for(name), split)
    return ShardResult(entry, skipped, transcoded, stats)
