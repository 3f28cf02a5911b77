"""Where ``dataset`` gets its serialized records: the shards (local and ``gs://`` through
TensorFlow's own reader, ``s3://`` streamed by imgrec's framing reader through ``storage``),
one replica's part of them, or only records that pass imgrec's checks."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import storage
from ..core.storage import Location
from ..format.framing import frames, read_records
from ..format.record_check import Problem, check_record

# URL schemes TensorFlow's file system reads itself (TFRecordDataset); others are streamed.
TF_SCHEMES = ("gs",)


@dataclass(frozen=True)
class Source:
    """The serialized records to read, and how many there are when the manifests say."""

    records: Any  # a tf.data.Dataset of scalar strings
    count: int | None


def _readable_by_tf(path: Location) -> bool:
    return not isinstance(path, str) or path.split("://", 1)[0] in TF_SCHEMES


def source(
    tf: Any,
    files: list[Location],
    counts: list[int] | None,
    *,
    shuffle: bool,
    seed: int | None,
    deterministic: bool,
    input_context: Any,
) -> Source:
    """Every record of ``files`` (this replica's part of them, with ``input_context``)."""
    replicas = input_context.num_input_pipelines if input_context is not None else 1
    replica = input_context.input_pipeline_id if input_context is not None else 0
    by_file = replicas > 1 and len(files) >= replicas
    by_record = replicas > 1 and not by_file
    if by_file:  # whole shards per replica: each reads only its own files
        files = files[replica::replicas]
        counts = counts[replica::replicas] if counts is not None else None
    total = sum(counts) if counts is not None else None
    if by_record:
        # Every replica walks the same records in the same order and keeps every n-th:
        # the file order must then be the same everywhere, whatever the seed.
        seed = 0 if seed is None else seed
        deterministic = True
        if total is not None:
            total = len(range(replica, total, replicas))
    if not files:  # an empty split: interleave takes no cycle_length of 0
        return Source(tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string)), 0)
    names = tf.data.Dataset.from_tensor_slices([str(p) for p in files])
    if shuffle:
        names = names.shuffle(len(files), seed=seed)
    streamed = not all(_readable_by_tf(p) for p in files)
    records = names.interleave(
        _streamer(tf) if streamed else tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if by_record:
        records = records.shard(replicas, replica)
    return Source(records, total)


def _streamer(tf: Any) -> Callable[[Any], Any]:
    """Records of one shard (by name) through imgrec's own framing reader and ``storage``:
    for URLs TensorFlow cannot open. Both CRCs are checked, as TensorFlow's reader does."""

    def open_one(name: Any) -> Any:
        def records(path: bytes) -> Iterator[bytes]:
            for _offset, data in read_records(storage.parse(path.decode())):
                yield data

        return tf.data.Dataset.from_generator(
            records, args=(name,), output_signature=tf.TensorSpec([], tf.string)
        )

    plain: Callable[[Any], Any] = tf.autograph.experimental.do_not_convert(open_one)
    return plain


@dataclass
class Tally:
    """What a checked read found: records in each shard (sound or not, by ``str`` of the
    shard), and how many passed the checks and went on to TensorFlow. Written by the one
    thread that runs the read, and read once it has ended."""

    found: dict[str, int] = field(default_factory=dict)
    passed: int = 0


def checked_records(
    tf: Any,
    files: Sequence[Location],
    shuffle: bool,
    seed: int | None,
    on_problem: Callable[[Problem], None],
    tally: Tally | None = None,
) -> Any:
    """Serialized records that passed imgrec's checks, read by imgrec's own framing reader;
    counted in ``tally`` as they are found and passed on."""
    order = list(files)
    if shuffle:
        random.Random(seed).shuffle(order)
    counts = tally if tally is not None else Tally()

    def records() -> Iterator[bytes]:
        for path in order:
            for frame in frames(path):
                counts.found[str(path)] = counts.found.get(str(path), 0) + 1
                issue = frame.problem
                if issue is None and frame.data is not None:
                    _rec, issue = check_record(frame.data, decode=True)
                if issue is not None:
                    on_problem(Problem(str(path), frame.index, frame.offset, issue))
                    continue
                assert frame.data is not None
                counts.passed += 1
                yield frame.data

    return tf.data.Dataset.from_generator(records, output_signature=tf.TensorSpec([], tf.string))
