"""imgrec: image folders to TFRecord shards and back to float32 tensors.

The names below are imported on first use, so that ``import imgrec`` (and with it
``imgrec --help``) does not pay for NumPy, Pillow and protobuf, or TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import DependencyError, ImgrecError, InputError, OutputError, ShardError  # noqa: E402

if TYPE_CHECKING:
    from .decoding import decode
    from .integrity import verify
    from .manifest import read_manifest
    from .options import PackOptions
    from .reader import dataset
    from .run import convert, pack, plan
    from .summary import summarize as inspect
    from .tfds import write_metadata as write_tfds_metadata
    from .tfrecord import write_index

# public name -> (module, attribute). No module is named like a public name: importing a
# submodule sets it as an attribute of the package, which would hide the function.
_LAZY = {
    "PackOptions": ("options", "PackOptions"),
    "pack": ("run", "pack"),
    "plan": ("run", "plan"),
    "convert": ("run", "convert"),
    "inspect": ("summary", "summarize"),
    "verify": ("integrity", "verify"),
    "decode": ("decoding", "decode"),
    "dataset": ("reader", "dataset"),
    "write_index": ("tfrecord", "write_index"),
    "write_tfds_metadata": ("tfds", "write_metadata"),
    "read_manifest": ("manifest", "read_manifest"),
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
    "convert",
    "dataset",
    "decode",
    "inspect",
    "pack",
    "plan",
    "read_manifest",
    "verify",
    "write_index",
    "write_tfds_metadata",
]
