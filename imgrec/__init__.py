"""imgrec: image folders to TFRecord shards and back to float32 tensors.

The names below are imported on first use, so that ``import imgrec`` (and with it
``imgrec --help``) does not pay for NumPy, Pillow and protobuf, or TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import DependencyError, ImgrecError, InputError, OutputError, ShardError  # noqa: E402

if TYPE_CHECKING:
    from .packing import PackOptions, pack
    from .reader import dataset
    from .summary import summarize as inspect

_LAZY = {
    "PackOptions": ("packing", "PackOptions"),
    "pack": ("packing", "pack"),
    "inspect": ("summary", "summarize"),
    "dataset": ("reader", "dataset"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'imgrec' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


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
