"""What ``pip install .`` installs: every module of the package, subpackages included (an
editable install, as the tests use, finds them in the source tree whatever the packaging
says, so only a built wheel shows what a user gets)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_holds_every_module(tmp_path):
    source = tmp_path / "source"  # a clean copy: setuptools reuses what a build/ folder holds
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "imgrec", source / "imgrec", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path),
            "-q",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("imgrec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "imgrec").rglob("*.py")}
    assert {"imgrec/packing/executors/local.py", "imgrec/packing/converters/recordio.py"} <= modules
    assert modules - names == set()
    assert "imgrec/py.typed" in names
