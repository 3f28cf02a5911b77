"""Optional heavy dependencies, imported on first use with an install hint when missing.

TensorFlow (reading) and Apache Beam (``--runner beam``, object-store URLs) are imported
only here, so that ``import imgrec`` and ``imgrec --help`` pay for neither.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from .errors import DependencyError

TF_HINT = "TensorFlow is needed to decode: pip install 'tensorflow>=2.16'"
BEAM_HINT = 'Apache Beam is not installed (needed {what}): pip install "imgrec[beam]"'


def import_tf() -> Any:
    """Import TensorFlow quietly.

    TensorFlow's C++ start-up notes (oneDNN, CUDA probing on GPU-less machines) are written
    straight to file descriptor 2 and ignore TF_CPP_MIN_LOG_LEVEL, burying imgrec's own
    messages; they are held back during the import and shown only if the import fails.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf
        except ImportError:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise DependencyError(TF_HINT) from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def import_beam(what: str = "by --runner beam") -> Any:
    """The apache_beam module, or a DependencyError saying how to install it."""
    try:
        import apache_beam
    except ImportError:
        raise DependencyError(BEAM_HINT.format(what=what)) from None
    return apache_beam
