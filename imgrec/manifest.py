"""The dataset manifest (``manifest.json``) and turning user paths into shard files.

The manifest is written last, atomically: its presence means the dataset is complete.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .storage import Folder

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def write(out: Folder, manifest: dict[str, Any]) -> None:
    # A file name that is not valid UTF-8 (kept as lone surrogates) is written as a
    # \udcXX escape, which is valid JSON and reads back to the same name.
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    out.write(MANIFEST, text.encode("utf-8", "backslashreplace"))


def read(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the manifest ({e})", str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
        raise InputError("not an imgrec manifest (no shard list)", str(path))
    return data


def _could_be_shard(path: Path) -> bool:
    """What a glob may pick: shards of any naming (other tools' too), not the files imgrec
    keeps beside them (index files, the manifest, hidden and temporary files)."""
    name = path.name
    return path.is_file() and not (name.startswith(".") or name.endswith((".idx", ".json")))


def is_shard_name(name: str) -> bool:
    return ".tfrecord" in name and not name.endswith(".idx") and not name.startswith(".")


def resolve(paths: str | Path | Sequence[str | Path], split: str | None = None) -> list[Path]:
    """Shard files meant by dataset folders, shard files, or glob patterns (in order).

    ``split`` picks one split's shards from dataset folders packed with ``--split``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(str, paths):
        path = Path(p)
        if split is not None:
            m = read(path) if path.is_dir() else None
            if m is None or split not in m.get("splits", {}):
                known = ", ".join(m.get("splits", {})) if m else ""
                raise InputError(
                    f"no split {split!r} here"
                    + (f" (this dataset has {known})" if known else " (not packed with --split)"),
                    p,
                )
            files.extend(path / s["file"] for s in m["shards"] if s.get("split") == split)
            continue
        if path.is_dir():
            m = read(path)
            if m is not None:
                files.extend(path / s["file"] for s in m["shards"])
            else:
                found = sorted(q for q in path.iterdir() if is_shard_name(q.name) and q.is_file())
                if not found:
                    raise InputError("no manifest.json and no *.tfrecord files here", p)
                files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            matches = sorted(glob.glob(p))
            if not matches:
                raise InputError("no such file, folder or matching shards", p)
            shards = [Path(m) for m in matches if _could_be_shard(Path(m))]
            if not shards:
                raise InputError("the pattern matches no shard files", p)
            files.extend(shards)
    if not files:
        raise InputError("no shards given" if split is None else f"split {split!r} has no shards")
    return files


def _entries(files: Sequence[Path]) -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
    """(manifest, shard entry) for each file, or None if any file has no manifest listing it."""
    manifests: dict[Path, dict[str, Any] | None] = {}
    found = []
    for f in files:
        if f.parent not in manifests:
            manifests[f.parent] = read(f.parent)
        m = manifests[f.parent]
        entry = next((s for s in m["shards"] if s.get("file") == f.name), None) if m else None
        if m is None or entry is None or "stats" not in m:
            return None
        found.append((m, entry))
    return found


@dataclass(frozen=True)
class Known:
    """What the manifests beside a set of shards say about their records."""

    records: int
    dtypes: frozenset[str]
    formats: frozenset[str]
    channels: frozenset[int]
    oriented: bool  # some record may carry an EXIF orientation to apply
    height: tuple[int, int] | None  # (min, max); None when there are no records
    width: tuple[int, int] | None


def describe(files: Sequence[Path]) -> Known | None:
    """What the manifests say about these shards' datasets; None if any shard has no
    manifest listing it (then nothing is known)."""
    entries = _entries(files)
    if entries is None:
        return None
    datasets = list({id(m): m for m, _ in entries}.values())
    stats = [m["stats"] for m in datasets]
    sized = [s for s in stats if s["records"]]

    def span(key: str) -> tuple[int, int] | None:
        if not sized:
            return None
        return min(s[key][0] for s in sized), max(s[key][1] for s in sized)

    return Known(
        records=sum(int(e["records"]) for _, e in entries),
        dtypes=frozenset(d for s in stats for d in s["dtypes"]),
        formats=frozenset(k for s in stats for k in s["formats"]),
        channels=frozenset(int(c) for s in stats for c in s["channels"]),
        oriented=any(s.get("oriented", 1) for s in stats),  # older manifests: assume so
        height=span("height"),
        width=span("width"),
    )
