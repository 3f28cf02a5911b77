"""A varied corpus of odd images and hostile files, drawn with Pillow, with what imgrec
should make of each; and ``reference``, the pixels each image must decode to, computed
independently of imgrec from the pixel rules (docs/pixel-rules.md).

Run as a script to write a large corpus somewhere to try imgrec on by hand:

    python tests/corpus.py /tmp/odd-images --copies 20
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

IMAGE = "image"  # Pillow loads it: imgrec must pack it and decode it to ``reference``
IGNORE = "ignore"  # not an image, not named like one


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * y + seed) % 256])
    noise = rng.integers(-20, 21, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").reshape(h, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels, with almost no data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _frames(n: int, h: int, w: int, seed: int) -> list[Image.Image]:
    return [Image.fromarray(_rgb(h, w, seed + i)) for i in range(n)]


def sources(seed: int) -> dict[str, Callable[[], bytes]]:
    """name -> bytes of every image kind in the corpus (all of them loadable by Pillow)."""
    h, w = 13 + seed % 7, 17 + seed % 5
    rgb = Image.fromarray(_rgb(h, w, seed))
    gray = rgb.convert("L")
    alpha = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w), np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    la = gray.copy()
    la.putalpha(alpha)
    pal = rgb.quantize(16)
    bilevel = gray.point(lambda v: 255 if v > 128 else 0).convert("1")
    g16 = Image.frombytes(
        "I;16", (w, h), (np.asarray(gray).astype(np.uint16) * 257 + seed).astype("<u2").tobytes()
    )
    rng = np.random.default_rng(seed)
    big = Image.fromarray(_rgb(90, 120, seed))
    lab = ImageCms.applyTransform(
        rgb,
        ImageCms.buildTransform(
            ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
        ),
    )
    assert lab is not None
    return {
        "rgb.png": lambda: _save(rgb, "PNG"),
        "rgb_q75.jpg": lambda: _save(rgb, "JPEG", quality=75),
        "rgb_444.jpg": lambda: _save(big, "JPEG", quality=95, subsampling=0),
        "rgb_422.jpg": lambda: _save(big, "JPEG", quality=90, subsampling=1),
        "rgb_progressive.jpg": lambda: _save(big, "JPEG", quality=85, progressive=True),
        "rgb.bmp": lambda: _save(rgb, "BMP"),
        "rgb_lzw.tif": lambda: _save(rgb, "TIFF", compression="tiff_lzw"),
        "rgb_lossless.webp": lambda: _save(rgb, "WEBP", lossless=True),
        "rgb_lossy.webp": lambda: _save(big, "WEBP", quality=80),
        "rgb.tga": lambda: _save(rgb, "TGA"),
        "rgb.ppm": lambda: _save(rgb, "PPM"),
        "gray.png": lambda: _save(gray, "PNG"),
        "gray.jpg": lambda: _save(gray, "JPEG", quality=90),
        "gray.tif": lambda: _save(gray, "TIFF"),
        "gray.pgm": lambda: _save(gray, "PPM"),
        "gray_2bit.png": lambda: _save(gray.point(lambda v: v // 64 * 85), "PNG", bits=2),
        "bilevel.png": lambda: _save(bilevel, "PNG"),
        "bilevel.bmp": lambda: _save(bilevel, "BMP"),
        "bilevel_g4.tif": lambda: _save(bilevel, "TIFF", compression="group4"),
        "gray_alpha.png": lambda: _save(la, "PNG"),
        "palette.png": lambda: _save(pal, "PNG"),
        "palette.gif": lambda: _save(pal, "GIF"),
        "palette.bmp": lambda: _save(pal, "BMP"),
        "palette_trns.png": lambda: _save(pal, "PNG", transparency=2),
        "palette_trns.gif": lambda: _save(pal, "GIF", transparency=2),
        "rgba.png": lambda: _save(rgba, "PNG"),
        "rgba_opaque.png": lambda: _save(rgb.convert("RGBA"), "PNG"),
        "rgba.tif": lambda: _save(rgba, "TIFF"),
        "rgba_lossless.webp": lambda: _save(rgba, "WEBP", lossless=True),
        "rgba.ico": lambda: _save(rgba.resize((32, 32)), "ICO", sizes=[(32, 32)]),
        "cmyk.jpg": lambda: _save(rgb.convert("CMYK"), "JPEG", quality=95),
        "cmyk.tif": lambda: _save(rgb.convert("CMYK"), "TIFF"),
        "lab.tif": lambda: _save(lab, "TIFF"),
        "gray16.png": lambda: _save(g16, "PNG"),
        "gray16.tif": lambda: _save(g16, "TIFF"),
        "rgb16.png": lambda: _png16(rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)),
        "rgba16.png": lambda: _png16(rng.integers(0, 65536, (h, w, 4), dtype=np.uint16)),
        "int32.tif": lambda: _save(
            Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (h, w), dtype=np.int32)), "TIFF"
        ),
        "float32.tif": lambda: _save(
            Image.fromarray(rng.normal(0, 1000, (h, w)).astype(np.float32)), "TIFF"
        ),
        "animated.gif": lambda: _save(
            _frames(3, h, w, seed)[0].quantize(32),
            "GIF",
            save_all=True,
            append_images=[f.quantize(32) for f in _frames(3, h, w, seed)[1:]],
        ),
        "animated.png": lambda: _save(
            _frames(3, h, w, seed)[0], "PNG", save_all=True, append_images=_frames(3, h, w, 9)
        ),
        "animated.webp": lambda: _save(
            _frames(3, h, w, seed)[0],
            "WEBP",
            save_all=True,
            lossless=True,
            append_images=_frames(2, h, w, 5),
        ),
        "pages.tif": lambda: _save(
            _frames(1, h, w, seed)[0], "TIFF", save_all=True, append_images=_frames(2, h, w, 3)
        ),
        **{
            f"exif{o}.jpg": (lambda o=o: _save(big, "JPEG", quality=90, exif=_exif(o)))
            for o in range(2, 9)
        },
        "exif6.png": lambda: _save(rgb, "PNG", exif=_exif(6)),
        "exif8.webp": lambda: _save(rgb, "WEBP", lossless=True, exif=_exif(8)),
        "jpeg named.png": lambda: _save(rgb, "JPEG", quality=90),
        "png named.jpg": lambda: _save(rgb, "PNG"),
        "no extension": lambda: _save(rgb, "PNG"),
        "gif named.txt": lambda: _save(pal, "GIF"),
        "ünïcödé 画像.png": lambda: _save(rgb, "PNG"),
        "new\nline.png": lambda: _save(gray, "PNG"),
    }


def make_corpus(root: Path, copies: int = 1) -> dict[str, str]:
    """Write the corpus under ``root`` (class folders ``c0``, ``c1``, ...) and return
    ``{relative path: expected outcome}``: IMAGE, IGNORE, or the skip-reason code."""
    expect: dict[str, str] = {}
    for copy in range(copies):
        folder = root / f"c{copy % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, make in sources(copy).items():
            rel = f"{folder.name}/{copy:03d} {name}"
            (root / rel).write_bytes(make())
            expect[rel] = IMAGE

    hostile = root / "hostile"
    hostile.mkdir(exist_ok=True)
    jpeg = _save(Image.fromarray(_rgb(60, 80, 1)), "JPEG", quality=90)
    png = _save(Image.fromarray(_rgb(60, 80, 2)), "PNG")
    rng = np.random.default_rng(0)
    files = {
        "empty.jpg": (b"", "empty"),
        "empty.dat": (b"", IGNORE),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "header_then_garbage.png": (png[:60] + rng.bytes(400), "corrupt"),
        "html.jpg": (b"<html><body>404 Not Found</body></html>\n", "not-an-image"),
        "notes.txt": (b"just text\n", IGNORE),
        "bomb.png": (_bomb_png(100_000, 100_000), "too-many-pixels"),
    }
    for name, (data, outcome) in files.items():
        (hostile / name).write_bytes(data)
        expect[f"hostile/{name}"] = outcome
    link = hostile / "missing.jpg"
    if not link.is_symlink():
        link.symlink_to(hostile / "no such file.jpg")
    expect["hostile/missing.jpg"] = "broken-symlink"
    loop = hostile / "loop"
    if not loop.is_symlink():
        loop.symlink_to(hostile, target_is_directory=True)
    return expect


def reference(path: Path) -> np.ndarray:
    """The pixels (HWC, stored dtype) imgrec must give for an image, from the pixel rules,
    computed with Pillow (and TensorFlow's PNG decoder for 16-bit colour, which Pillow cannot
    read at full depth)."""
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16 and data[25] in (2, 6):
        import tensorflow as tf

        arr = tf.io.decode_png(data, dtype=tf.uint16).numpy()
        return _drop_opaque_alpha(arr, 65535)
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode in ("1", "L"):
            return np.asarray(im.convert("L"))[..., None]
        if mode.startswith("I;16"):
            return np.asarray(im).astype(np.uint16)[..., None]
        if mode == "I":
            return np.asarray(im).astype(np.int32)[..., None]
        if mode == "F":
            return np.asarray(im).astype(np.float32)[..., None]
        if mode in ("LA", "La"):
            la = np.asarray(im.convert("LA"))
            if la[..., 1].min() < 255:
                return np.dstack([la[..., 0]] * 3 + [la[..., 1]])
            return la[..., :1]
        if mode == "LAB":
            rgb = ImageCms.applyTransform(
                im,
                ImageCms.buildTransform(
                    ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
                ),
            )
            assert rgb is not None
            return np.asarray(rgb)
        if mode in ("P", "PA", "RGBA", "RGBa"):
            return _drop_opaque_alpha(np.asarray(im.convert("RGBA")), 255)
        return np.asarray(im.convert("RGB"))


def damaged(root: Path) -> dict[str, str]:
    """JPEGs and PNGs damaged in the ways files get damaged (cut short, bytes overwritten,
    markers where data should be), and sound ones of each layout, written to ``root``;
    returns ``{name: what pack makes of it}``: IMAGE, or the skip-reason code. Pillow's
    decode is what decides: some damage only gives wrong pixels, and is packed."""
    root.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_rgb(120, 160, 7))
    jpg = _save(rgb, "JPEG", quality=90)
    sos = jpg.index(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", jpg[sos + 2 : sos + 4])[0]  # entropy-coded data
    mid = (start + len(jpg)) // 2

    def at(data: bytes, pos: int, new: bytes) -> bytes:
        return data[:pos] + new + data[pos + len(new) :]

    noise = bytes(np.random.default_rng(3).integers(0, 255, 64, np.uint8)).replace(b"\xff", b"")
    png = _save(rgb, "PNG")
    idat = png.index(b"IDAT")
    (idat_len,) = struct.unpack(">I", png[idat - 4 : idat])
    exif = _exif(6)
    progressive = _save(rgb, "JPEG", quality=90, progressive=True)
    files = {
        "sound.jpg": (jpg, IMAGE),
        "sound_444.jpg": (_save(rgb, "JPEG", quality=95, subsampling=0), IMAGE),
        "sound_gray.jpg": (_save(rgb.convert("L"), "JPEG", quality=90), IMAGE),
        "sound_restarts.jpg": (_save(rgb, "JPEG", quality=90, restart_marker_blocks=5), IMAGE),
        "sound_exif6.jpg": (_save(rgb, "JPEG", quality=90, exif=exif), IMAGE),
        "sound_progressive.jpg": (progressive, IMAGE),
        "sound.png": (png, IMAGE),
        "sound_gray16.png": (
            _save(Image.fromarray(_rgb(20, 30, 1)[..., 0]).convert("I;16"), "PNG"),
            IMAGE,
        ),
        "truncated.jpg": (jpg[: len(jpg) * 2 // 3], "truncated"),
        "truncated_in_scan_header.jpg": (jpg[: start + 10], "truncated"),
        "header_only.jpg": (jpg[:start], "truncated"),
        "no_eoi.jpg": (jpg[:-2], "truncated"),
        "truncated_exif6.jpg": (_save(rgb, "JPEG", quality=90, exif=exif)[:-400], "truncated"),
        "truncated_progressive.jpg": (progressive[: len(progressive) // 2], "truncated"),
        "garbage_in_entropy.jpg": (at(jpg, mid, noise), IMAGE),
        "bad_marker_in_entropy.jpg": (at(jpg, mid, b"\xff\x01"), IMAGE),
        "eoi_in_entropy.jpg": (at(jpg, mid, b"\xff\xd9"), IMAGE),
        "zeros_in_entropy.jpg": (at(jpg, start, bytes(200)), IMAGE),
        "bad_crc_idat.png": (at(png, idat + 4 + idat_len, b"\0\0\0\0"), IMAGE),
        "bad_crc_ihdr.png": (at(png, 29, b"\0\0\0\0"), "not-an-image"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "garbage_in_idat.png": (at(png, idat + 200, noise), "corrupt"),
        "png named.jpg": (png, IMAGE),
        "jpeg named.png": (jpg, IMAGE),
        "text.jpg": (b"hello, not an image\n", "not-an-image"),
        "zero.jpg": (b"", "empty"),
        "cmyk.jpg": (_save(rgb.convert("CMYK"), "JPEG", quality=90), IMAGE),
    }
    for name, (data, _) in files.items():
        (root / name).write_bytes(data)
    return {name: outcome for name, (_, outcome) in files.items()}


def _drop_opaque_alpha(arr: np.ndarray, top: int) -> np.ndarray:
    if arr.shape[2] == 4 and arr[..., 3].min() == top:
        return arr[..., :3]
    return arr


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "odd-images")
    copies = int(sys.argv[sys.argv.index("--copies") + 1]) if "--copies" in sys.argv else 1
    outcomes = make_corpus(out, copies)
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"wrote {len(outcomes)} files to {out}: {counts}")
