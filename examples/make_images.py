"""Generate the small labelled example folder ``examples/images`` used by the Quick start.

Three classes of simple drawn shapes, stored as a mix of formats: RGB PNG, JPEG, 8-bit
grayscale PNG, a 16-bit grayscale PNG, an RGBA PNG with real transparency, and a GIF (which
imgrec transcodes to PNG). Run it again to regenerate the folder:

    python examples/make_images.py
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 96
OUT = Path(__file__).parent / "images"


def draw(shape: str, rng: random.Random) -> Image.Image:
    bg = tuple(rng.randrange(0, 120) for _ in range(3))
    fg = tuple(rng.randrange(130, 256) for _ in range(3))
    im = Image.new("RGB", (SIZE, SIZE), bg)
    d = ImageDraw.Draw(im)
    r = rng.randrange(18, 36)
    cx, cy = rng.randrange(r + 4, SIZE - r - 4), rng.randrange(r + 4, SIZE - r - 4)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=fg)
    elif shape == "square":
        d.rectangle(box, fill=fg)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return im


def main() -> None:
    rng = random.Random(7)
    if OUT.exists():
        shutil.rmtree(OUT)
    for shape in ("circle", "square", "triangle"):
        folder = OUT / shape
        folder.mkdir(parents=True)
        for i in range(8):
            im = draw(shape, rng)
            kind = i % 4
            if kind == 0:
                im.save(folder / f"{shape}_{i}.png")
            elif kind == 1:
                im.save(folder / f"{shape}_{i}.jpg", quality=90)
            elif kind == 2:
                im.convert("L").save(folder / f"{shape}_{i}_gray.png")
            else:
                im.convert("L").save(folder / f"{shape}_{i}_gray.jpg", quality=90)
        # One of each of the less common kinds per class.
        gray16 = np.asarray(draw(shape, rng).convert("L")).astype(np.uint16) * 257
        Image.frombytes("I;16", (SIZE, SIZE), gray16.astype("<u2").tobytes()).save(
            folder / f"{shape}_16bit.png"
        )
        rgba = draw(shape, rng).convert("RGBA")
        alpha = Image.new("L", (SIZE, SIZE), 0)
        ImageDraw.Draw(alpha).ellipse((8, 8, SIZE - 8, SIZE - 8), fill=255)
        rgba.putalpha(alpha)
        rgba.save(folder / f"{shape}_alpha.png")
        draw(shape, rng).quantize(16).save(folder / f"{shape}_palette.gif")
    (OUT / "README.txt").write_text("Example images for imgrec, made by examples/make_images.py\n")


if __name__ == "__main__":
    main()
