"""imgrec: image folders to TFRecord shards and back to float32 tensors.

The names below are imported on first use, so that ``import imgrec`` (and with it
``imgrec --help``) does not pay for NumPy, Pillow and protobuf, or TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .core.errors import DependencyError, ImgrecError, InputError, OutputError, ShardError  # noqa: E402

if TYPE_CHECKING:
    from .checking.integrity import verify
    from .checking.summary import summarize as inspect
    from .format.framing import write_index
    from .format.manifest import read_manifest
    from .format.options import PackOptions
    from .packing.driver import convert, pack, plan
    from .packing.tfds import write_metadata as write_tfds_metadata
    from .reading.order import RecordSampler
    from .reading.random_access import RecordSource
    from .reading.tfdata import dataset
    from .reading.to_files import decode

# public name -> (module, attribute). No module is named like a public name: importing a
# submodule sets it as an attribute of the package, which would hide the function.
_LAZY = {
    "PackOptions": ("format.options", "PackOptions"),
    "pack": ("packing.driver", "pack"),
    "plan": ("packing.driver", "plan"),
    "convert": ("packing.driver", "convert"),
    "inspect": ("checking.summary", "summarize"),
    "verify": ("checking.integrity", "verify"),
    "decode": ("reading.to_files", "decode"),
    "dataset": ("reading.tfdata", "dataset"),
    "RecordSource": ("reading.random_access", "RecordSource"),
    "RecordSampler": ("reading.order", "RecordSampler"),
    "write_index": ("format.framing", "write_index"),
    "write_tfds_metadata": ("packing.tfds", "write_metadata"),
    "read_manifest": ("format.manifest", "read_manifest"),
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
    "RecordSampler",
    "RecordSource",
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
