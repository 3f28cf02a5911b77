"""Test images, drawn with Pillow. Run as a script to write a sample tree to a folder:

python tests/fixtures.py /tmp/sample-tree
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def noise(shape: tuple[int, ...], seed: int, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hi = 65536 if dtype == np.uint16 else 256
    return rng.integers(0, hi, shape, dtype=dtype)


def smooth_rgb(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like image (gradients plus mild noise): compresses like real pictures."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            128 + 100 * np.sin(x / (7 + seed % 5) + seed),
            128 + 100 * np.cos(y / (9 + seed % 3)),
            (x + y + seed * 13) % 256,
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gray16(h: int, w: int, seed: int) -> Image.Image:
    arr = noise((h, w), seed, np.uint16)
    return Image.frombytes("I;16", (w, h), arr.astype("<u2").tobytes())


def make_tree(root: Path, per_class: int = 3) -> dict[str, Path]:
    """A small class-folder tree with PNG, JPEG, grayscale, 16-bit, alpha and GIF files.

    Returns a name -> path map of notable files.
    """
    files: dict[str, Path] = {}
    for c, name in enumerate(["cat", "dog", "fish"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            seed = 10 * c + i
            arr = smooth_rgb(24 + i, 32, seed)
            if i % 3 == 0:
                path = folder / f"{name}{i}.png"
                Image.fromarray(arr).save(path)
            elif i % 3 == 1:
                path = folder / f"{name}{i}.jpg"
                Image.fromarray(arr).save(path, quality=90)
            else:
                path = folder / f"{name}{i}.png"
                Image.fromarray(arr).convert("L").save(path)
            files[f"{name}{i}"] = path
    files["gray16"] = root / "cat" / "deep.png"
    gray16(20, 18, 99).save(files["gray16"])
    files["alpha"] = root / "dog" / "alpha.png"
    rgba = np.dstack([smooth_rgb(16, 16, 5), noise((16, 16), 6)])
    Image.fromarray(rgba, "RGBA").save(files["alpha"])
    files["gif"] = root / "fish" / "anim.gif"
    Image.fromarray(smooth_rgb(12, 14, 7)).quantize(32).save(files["gif"])
    files["loose"] = root / "loose.png"
    Image.fromarray(smooth_rgb(10, 10, 8)).save(files["loose"])
    files["text"] = root / "notes.txt"
    files["text"].write_text("not an image\n")
    return files


def disk_full_on(shard: str, write_shard: Callable[..., Any]) -> Callable[..., Any]:
    """``encode.write_shard``, but writing the shard named ``shard`` fails as a full disk."""

    def failing(folder: Path, spec: Any, *args: Any) -> Any:
        if spec.name == shard:
            raise OSError(28, "No space left on device")
        return write_shard(folder, spec, *args)

    return failing


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file in a folder, hidden ones included, by name (no journal or temporary file
    may stay behind a finished pack)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def names_in(folder: Path) -> list[str]:
    """Every name in a folder, files and folders, hidden ones included."""
    return sorted(p.name for p in folder.iterdir())


def run(*args: object, stdin: str | None = None) -> Any:
    """``imgrec ARGS`` in this process (click's CliRunner); stdout and stderr apart."""
    from click.testing import CliRunner

    from imgrec.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin, catch_exceptions=False)


# One Beam worker, in this process: the fastest DirectRunner set-up (and Beam's default).
DIRECT = ("direct_num_workers=1", "direct_running_mode=in_memory")


def beam_pack(src: Any, out: Any, opts: Any, **kwargs: Any) -> dict[str, Any]:
    """``imgrec.pack`` on Beam's DirectRunner in this process; the manifest as a dict."""
    from dataclasses import replace

    import imgrec

    opts = replace(opts, runner="DirectRunner", beam_options=opts.beam_options or DIRECT)
    return imgrec.pack(src, out, opts, **kwargs).to_dict()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "sample-tree")
    for key, path in make_tree(target).items():
        print(f"{key}: {path}")
