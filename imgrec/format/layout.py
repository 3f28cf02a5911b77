"""What the files of a dataset folder are called: shards, their index files, the manifest,
and what a pack keeps there while it runs (journal, lock, working pieces). Every module
that names one of these files takes the name from here."""

from __future__ import annotations

from pathlib import Path
from typing import overload

MANIFEST = "manifest.json"
# The object classes of a dataset packed with annotations, as the TF Object Detection API
# reads them (its StringIntLabelMap text format).
LABEL_MAP = "label_map.pbtxt"
INDEX_SUFFIX = ".idx"
# A pack's journal (``--resume``): a folder holding the plan and the finished shards' lines.
JOURNAL = ".imgrec-journal.d"
PLAN = "plan.json"  # in the journal
FILES = "files.jsonl"  # in the journal
# One writer per OUT (packing/lock.py).
LOCK = ".imgrec.lock"
# The local executor's records before they go into shards (packing/executors/onepass.py);
# only ever there while a pack runs, and no sign of an earlier one: a run killed meanwhile
# leaves OUT as it found it, but for this.
PIECES = ".imgrec-pieces.d"
# What imgrec 0.1.0 kept in OUT while a pack ran: removed by any new run.
LEGACY = (".imgrec-journal.json", ".imgrec-plan.json")


@overload
def index_for(shard: Path) -> Path: ...
@overload
def index_for(shard: str) -> str: ...
@overload
def index_for(shard: Path | str) -> Path | str: ...


def index_for(shard: Path | str) -> Path | str:
    """A shard's index file, given as the shard is (a file name, a local path or a URL):
    ``data-00000-of-00004.tfrecord`` -> ``data-00000-of-00004.tfrecord.idx``."""
    if isinstance(shard, Path):
        return shard.with_name(shard.name + INDEX_SUFFIX)
    return shard + INDEX_SUFFIX


def is_index_name(name: str) -> bool:
    return name.endswith(INDEX_SUFFIX)


def is_shard_name(name: str) -> bool:
    return ".tfrecord" in name and not is_index_name(name) and not name.startswith(".")
