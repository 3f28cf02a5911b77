"""Images already in Spark: a DataFrame's rows (by default ``spark.read.format("binaryFile")``'s
``path``, ``content``, ``length``, ``modificationTime``) packed as ``pack`` packs a folder,
through the same driver (``imgrec.spark.write``).

Each row's path, relative to a root (the rows' common folder, unless given), is what a
walk's relative path is: the record's filename, its class (the first folder, or the label
column), its split. The rows are put in that order on the executors, so the same rows give
the same bytes however the DataFrame is partitioned. Two Spark jobs, as for a folder on
``--runner spark``:

- the scan: each row's header look, from its content, on the executors; the driver reads
  the answers one at a time in path order (``toLocalIterator``) and classifies them;
- the shards: the work list's images joined with their rows' content by path, each image
  packed, grouped by shard, each shard written in plan order and recorded in the journal.
"""

from __future__ import annotations

import posixpath
from functools import partial
from pathlib import Path
from typing import Any

from ...core import spool, storage
from ...core.errors import InputError
from ...core.progress import Progress
from ...core.storage import Folder, Location
from ...format.options import PackOptions
from ...images import loading
from ..discover import Item, Walk, decode_item, encode_item
from ..encode import Packed, Skipped, packed
from ..payloads import item_options, portable, unportable
from ..scan import Scan, classify
from .spark import SparkExecutor


def common_folder(first: str, last: str) -> str:
    """The folder holding every path between ``first`` and ``last`` in sorted order (the
    common prefix of the smallest and the largest is every path's), without its "/"."""
    prefix = posixpath.commonprefix([first, last])
    return prefix[: prefix.rfind("/")] if "/" in prefix else ""


def _location(uri: str) -> Location:
    """Where a row's file is, as imgrec names places (``file:`` URIs as local paths)."""
    if uri.startswith("file:"):
        return Path("/" + uri[len("file:") :].lstrip("/"))
    return storage.parse(uri)


def _row_facts(row: Any, root: str, max_pixels: int) -> tuple[str, str, int, int, Any]:
    """On an executor: (rel, its class text, size, mtime ns, the header look) of a row
    (path, content, time, label)."""
    path, content, when, label = row
    rel = path[len(root) + 1 :]
    text = str(label) if label is not None else (rel.split("/")[0] if "/" in rel else "")
    data = bytes(content) if content is not None else b""
    try:
        probed = portable(loading.probe_bytes(data, max_pixels))
    except (loading.NotAnImage, loading.SkipImage) as e:
        probed = portable(e)
    mtime = int(when.timestamp() * 1e9) if when is not None else 0
    return rel, text, len(data), mtime, probed


def _keyed_content(row: Any, root: str) -> tuple[str, bytes]:
    path, content = row
    return path[len(root) + 1 :], bytes(content) if content is not None else b""


def _pack_joined(
    joined: tuple[str, tuple[tuple[str, int, Item], bytes]], image_options: loading.ImageOptions
) -> tuple[str, tuple[int, Item, Packed | Skipped]]:
    """On an executor: an image of the plan, packed from its row's content."""
    _, ((name, position, item), content) = joined
    try:
        result: loading.Loaded | Exception = loading.load_bytes(
            content, item_options(item, image_options)
        )
    except Exception as e:  # encode.skipped_for says what each means
        result = e
    return name, (position, item, packed(item, result, image_options))


class FrameExecutor(SparkExecutor):
    """The rows of ``frame`` (a pyspark DataFrame) as the images to pack: ``path`` and
    ``content`` columns, an optional ``label`` column (its values' text as the class), a
    ``time`` column for the files' modification times (None: none), and the ``root``
    folder the paths are relative to (None: their common folder)."""

    resume = "resume=True"  # imgrec.spark.write's

    def __init__(
        self,
        frame: Any,
        path: str = "path",
        content: str = "content",
        label: str | None = None,
        time: str | None = "modificationTime",
        root: str | None = None,
    ) -> None:
        super().__init__()
        self.frame, self.path, self.content, self.label = frame, path, content, label
        missing = [c for c in (path, content, label) if c is not None and c not in frame.columns]
        if missing:
            raise InputError(f"the DataFrame has no column {missing[0]!r} (it has {frame.columns})")
        self.time = time if time in frame.columns else None
        self._session = frame.sparkSession
        self.root = root.rstrip("/") if root is not None else self._common_root()

    def _common_root(self) -> str:
        from pyspark.sql import functions as F

        first, last = self.frame.agg(F.min(self.path), F.max(self.path)).first()
        if first is None:
            raise InputError("the DataFrame has no rows: no images to pack")
        return common_folder(first, last)

    def source(self) -> Location:
        """The root, as the manifest's source."""
        return _location(self.root)

    def check(self) -> None:
        """The DataFrame's session is the one to use."""

    def scan_source(
        self, src: Location, out: Folder, opts: PackOptions, progress: Progress
    ) -> Scan:
        from pyspark.sql import functions as F

        self._close_store()
        self._store = spool.Disk()
        columns = [F.col(self.path), F.col(self.content)]
        columns.append(F.col(self.time) if self.time else F.lit(None))
        columns.append(F.col(self.label).cast("string") if self.label else F.lit(None))
        rows = self.frame.select(*columns).rdd
        look = partial(_row_facts, root=self.root, max_pixels=opts.max_pixels)
        facts = rows.map(look).sortBy(lambda fact: fact[0])
        texts = self._classes()
        if self.label is None and opts.labels_file:
            texts = _listed(Path(opts.labels_file), texts)
        labels = {text: n for n, text in enumerate(texts)}
        items = self._store.values(encode_item, decode_item)
        answers = self._store.values(_same, _same)
        last = None
        for rel, text, size, mtime, probed in facts.toLocalIterator():
            if rel == last:
                raise InputError(f"the DataFrame has two rows for {rel!r}; drop one of them")
            last = rel
            item = Item(storage.join(src, rel), rel, labels.get(text, -1), text, (size, mtime))
            spool.append(items, item)
            spool.append(answers, probed)
        walk = Walk(items, texts, 0, [])
        looked = zip(items, map(unportable, answers), strict=True)
        return classify(src, opts, walk, looked, progress, self._store)

    def _classes(self) -> list[str]:
        """The class names, sorted: the label column's values, or the paths' first folders
        (a query of the paths alone: the contents are not read for it)."""
        from pyspark.sql import functions as F

        if self.label is not None:
            column = F.col(self.label).cast("string")
        else:
            path = F.col(self.path)
            rel = path.substr(F.lit(len(self.root) + 2), F.length(path))
            column = F.regexp_extract(rel, r"^([^/]+)/", 1)
        found = self.frame.select(column.alias("c")).distinct().collect()
        return sorted({row.c for row in found if row.c})

    def _packed(self, planned: Any, spread: int, image_options: loading.ImageOptions) -> Any:
        """The plan's images packed from their rows' content, joined by path."""
        keyed = planned.map(lambda task: (task[2].rel, task))
        content = self.frame.select(self.path, self.content).rdd.map(
            partial(_keyed_content, root=self.root)
        )
        joined = keyed.join(content, numPartitions=spread)
        return joined.map(partial(_pack_joined, image_options=image_options))

    def close(self) -> None:
        """The DataFrame's session is the caller's: only the scan's files are removed."""
        self._close_store()


def _same(value: Any) -> Any:
    return value


def _listed(labels_file: Path, found: list[str]) -> list[str]:
    from ..discover import read_labels_file

    listed = read_labels_file(labels_file)
    unknown = [t for t in found if t not in listed]
    if unknown:
        raise InputError(f"class {unknown[0]!r} is not in the labels file", str(labels_file))
    return listed
