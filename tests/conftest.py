from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fixtures import make_tree  # noqa: E402


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    src = tmp_path / "src"
    return src, make_tree(src)
