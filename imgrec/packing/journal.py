"""OUT across runs: the checks before a pack touches it, the journal of finished shards
that makes ``--resume`` possible, and the clean-up once the manifest is written.

The journal is a folder in OUT, ``.imgrec-journal.d/``: ``plan.json`` (written once: the
plan's key and options), ``files.jsonl`` (the source files, one line each) and one
``<shard>.json`` per finished shard, written by whoever wrote the shard (the driver, or a
Beam worker). Executors may keep their own working files there too. It is removed, whole,
when the manifest has been written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..core import storage
from ..core.errors import InputError, OutputError
from ..core.storage import Folder, Location
from ..format.layout import FILES, JOURNAL, LEGACY, LOCK, MANIFEST, PIECES, PLAN, is_shard_name
from ..format.options import PackOptions
from .encode import ShardResult
from .scan import File
from .sharding import ShardSpec


def check_out(src: Location, out: Folder, overwrite: bool, resume: bool) -> bool:
    """Refuse an unusable OUT before any work. Changes nothing. Returns whether there is a
    run to resume: not when ``resume`` finds only what a run killed before its plan left
    (its first pass's pieces), for then nothing was finished and the run starts over."""
    if isinstance(out.where, Path) and out.where.exists() and not out.where.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another OUT")
    if storage.same_place(out.where, src):
        raise OutputError(f"{out} is SRC itself; choose another OUT folder")
    if resume and overwrite:
        raise OutputError("--resume continues a run, --overwrite starts over: choose one")
    interrupted = resumable(out)
    if resume and not interrupted and _first_pass_killed(out):
        return False
    if resume and not interrupted:
        if any(out.size(name) is not None for name in LEGACY):
            raise OutputError(
                f"{out} holds a run interrupted under an older imgrec, which cannot be"
                " resumed; use --overwrite to start over"
            )
        if out.size(MANIFEST) is not None:
            raise OutputError(
                f"{out} holds a finished dataset, not an interrupted run: nothing to resume"
                " (--overwrite packs it again)"
            )
        raise OutputError(f"{out} holds no interrupted run to resume; drop --resume")
    if not resume and not overwrite and not out.is_empty(ignore=(LOCK, PIECES)):
        if interrupted:
            raise OutputError(
                f"{out} holds an interrupted pack; pass --resume to continue it,"
                " or --overwrite to start over"
            )
        raise OutputError(f"{out} is not empty; pass --overwrite to replace it")
    return resume


def resumable(out: Folder) -> bool:
    """OUT holds a run that ``--resume`` can continue: its journal's plan was written, and
    no manifest. A journal beside a manifest is a complete run's, stopped (or killed) while
    its journal was being removed; or a new run's, killed before it marked OUT unfinished
    (``Journal.open``), which left the earlier dataset as it was: complete either way."""
    return out.size(f"{JOURNAL}/{PLAN}") is not None and out.size(MANIFEST) is None


def _first_pass_killed(out: Folder) -> bool:
    where = out.where
    return isinstance(where, Path) and (where / PIECES).is_dir() and out.is_empty((LOCK, PIECES))


def prepare_out(out: Folder, resuming: bool) -> None:
    """Make OUT ready to write into (after check_out passed and the scan found images): no
    earlier journal, temporary file or lone index. An earlier dataset's manifest stays:
    ``Journal.open`` removes it once the new journal marks OUT unfinished, so a folder that
    cannot be written loses nothing. Raises OSError when OUT cannot be written."""
    if not resuming:
        for name in LEGACY:
            out.delete(name)
        out.delete_tree(JOURNAL)
    if not isinstance(out.where, Path) or out.where.is_dir():
        out.remove_incomplete()
        remove_orphan_indexes(out)
    out.make()


def remove_orphan_indexes(out: Folder) -> None:
    """Remove index files whose shard is not there: a run stopped between renaming a
    shard's index into place and renaming the shard itself leaves one."""
    names = set(out.files())
    for name in names:
        if name.endswith(".tfrecord.idx") and name.removesuffix(".idx") not in names:
            out.delete(name)


def remove_stale(out: Folder, keep: set[str]) -> None:
    """Remove shards and index files of an earlier pack that this one did not rewrite."""
    for name in out.files():
        if name not in keep and (is_shard_name(name) or name.endswith(".tfrecord.idx")):
            out.delete(name)


@dataclass(frozen=True)
class Journal:
    """The journal of one planned run in OUT (picklable: Beam workers record into it)."""

    out: Folder
    key: str  # what must not change between an interrupted run and its --resume

    @classmethod
    def open(
        cls,
        out: Folder,
        opts: PackOptions,
        labels: list[str],
        files: Sequence[File],
        resume: bool,
        annotations: str | None = None,
    ) -> Journal:
        """A new journal, or (``resume``) the interrupted run's, refused if the plan changed.
        ``files``: each image's relative path, size and time (``Scan.files``), streamed one
        line each: nothing is held per file. ``annotations``: the digest of what the
        annotation files said of the images (``AnnotationInfo.digest``), which must not
        change either."""
        head = [__version__, labels, opts.recorded()]
        if annotations is not None:  # (a pack without them keeps its key as before)
            head.append(annotations)
        key = hashlib.sha256(json.dumps(head, sort_keys=True, ensure_ascii=True).encode())
        for line in _file_lines(files):
            key.update(line)
        journal = cls(out, key.hexdigest())
        if not resume:
            plan = {"imgrec": __version__, "key": journal.key, "options": opts.recorded()}
            if annotations is not None:
                plan["annotations"] = annotations
            out.write(journal.name(PLAN), _dumps(plan))
            # OUT is marked unfinished now: the earlier dataset (if any) ends here.
            out.delete(MANIFEST)
            with out.open_write(journal.name(FILES)) as f:  # for a refused --resume to say why
                f.writelines(_file_lines(files))
            return journal
        try:
            then = json.loads(out.read(journal.name(PLAN)))
            if then["key"] != journal.key:
                raise InputError(_mismatch(journal, then, opts, files, annotations), str(out))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OutputError(
                f"{out.at(journal.name(PLAN))}: unreadable ({e}); use --overwrite"
            ) from None
        return journal

    def name(self, file: str) -> str:
        """The name, in OUT, of a file kept in the journal."""
        return f"{JOURNAL}/{file}"

    def record(self, result: ShardResult) -> None:
        """A shard is finished: from now on a resumed run keeps it."""
        self.out.write(self.name(result.entry.file + ".json"), _dumps(result.to_dict()))

    def recorded(self, spec: ShardSpec) -> ShardResult | None:
        """The result recorded for this shard, if any (an unreadable one counts as none: the
        shard is written again)."""
        try:
            data = self.out.read_if_present(self.name(spec.name + ".json"))
            result = ShardResult.from_dict(json.loads(data)) if data is not None else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return result if result is not None and result.entry.file == spec.name else None

    def finished(self, spec: ShardSpec) -> ShardResult | None:
        """The recorded result of a shard an earlier run finished, if the shard is still
        whole (its index present, its size and sha256 as recorded)."""
        result = self.recorded(spec)
        if result is None:
            return None
        entry = result.entry
        if self.out.size(entry.index) is None or self.out.size(entry.file) != entry.bytes:
            return None
        return result if self.out.sha256(entry.file) == entry.sha256 else None

    def close(self) -> None:
        """The run is complete (its manifest written): the journal has served."""
        discard(self.out)


def discard(out: Folder) -> None:
    """Remove OUT's journal, whole: the run it recorded is complete."""
    out.delete_tree(JOURNAL)


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=True).encode()


def _file_lines(files: Iterable[File]) -> Iterator[bytes]:
    for rel, size, mtime in files:
        yield json.dumps([rel, size, mtime], ensure_ascii=True).encode() + b"\n"


def _mismatch(
    journal: Journal,
    then: dict[str, Any],
    opts: PackOptions,
    files: Iterable[File],
    annotations: str | None,
) -> str:
    """Why a --resume is refused: the options that changed, the annotations, or how the
    source changed."""
    now = json.loads(json.dumps(opts.recorded()))  # tuples -> lists, as stored
    changed = sorted(k for k in now if then.get("options", {}).get(k) != now[k])
    if changed:
        return (
            "cannot resume: these options differ from the interrupted run's: "
            + ", ".join(f"{k} (was {then['options'].get(k)!r})" for k in changed)
            + "; use the same options, or --overwrite to start over"
        )
    if then.get("annotations") != annotations:
        return (
            "cannot resume: the annotations differ from the interrupted run's (an annotation"
            " file or metadata.jsonl/.csv changed); undo the change, or use --overwrite to"
            " start over"
        )
    # Only here, when the run is refused, are both lists of files held in memory.
    old: dict[str, list[int]] = {}
    with storage.open_read(journal.out.at(journal.name(FILES))) as f:
        for line in f:
            rel, *st = json.loads(line)
            old[rel] = st
    new = {rel: st for rel, *st in map(json.loads, _file_lines(files))}
    changes = {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "modified": sorted(k for k in new.keys() & old.keys() if new[k] != old[k]),
    }
    counts = ", ".join(f"{len(rels)} {kind}" for kind, rels in changes.items())
    named = "; ".join(f"{kind} {_named(rels)}" for kind, rels in changes.items() if rels)
    return (
        f"cannot resume: the source changed since the interrupted run ({counts}): {named};"
        " to resume, undo those changes (the same files, sizes and modification times),"
        " or use --overwrite to start over"
    )


def _named(rels: list[str], first: int = 3) -> str:
    """The first few paths (relative to SRC), on one line whatever their characters."""
    shown = [rel if rel.isprintable() else ascii(rel) for rel in rels[:first]]
    more = f" and {len(rels) - first} more" if len(rels) > first else ""
    return ", ".join(shown) + more
