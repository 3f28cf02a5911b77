"""imgrec: image folders to TFRecord shards and back to float32 tensors."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import DependencyError, ImgrecError, InputError, OutputError, ShardError  # noqa: E402
from .packing import PackOptions, pack  # noqa: E402
from .summary import summarize as inspect  # noqa: E402


def dataset(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`imgrec.reader.dataset` (imports TensorFlow on first call)."""
    from .reader import dataset as _dataset

    return _dataset(*args, **kwargs)


__all__ = [
    "DependencyError",
    "ImgrecError",
    "InputError",
    "OutputError",
    "PackOptions",
    "ShardError",
    "__version__",
    "dataset",
    "inspect",
    "pack",
]
