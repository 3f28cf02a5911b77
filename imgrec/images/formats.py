"""Image formats imgrec cannot pack, named by their content when Pillow does not recognise
it: phones' HEIC/HEIF and JPEG XL (and AVIF, for a Pillow built without it). Such a file is
an image that was meant to be packed, so it is skipped with a reason that says what it is
and what to do, whatever its extension, rather than called "not an image" (or, for a
``.jxl``, ignored)."""

from __future__ import annotations

from typing import BinaryIO

# ISO base media file format brands (the 'ftyp' box): HEIF's and AVIF's
HEIF_BRANDS = frozenset(b"heic heix hevc hevx heim heis hevm hevs mif1 mif2 msf1".split())
AVIF_BRANDS = frozenset({b"avif", b"avis"})
JXL_CODESTREAM = b"\xff\x0a"
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
HEAD = 64  # bytes enough to tell


def unpackable(source: BinaryIO) -> str | None:
    """What the file ``source`` holds, if one of these formats, with what to do about it;
    else None (a stream that cannot go back to its start included)."""
    try:
        source.seek(0)
        head = source.read(HEAD)
    except (OSError, ValueError):
        return None
    if head.startswith(JXL_CONTAINER) or head.startswith(JXL_CODESTREAM):
        return "a JPEG XL image, which imgrec does not pack yet: convert it to PNG or JPEG first"
    brands = _brands(head)
    if brands & HEIF_BRANDS and not brands & AVIF_BRANDS:
        return (
            "a HEIC/HEIF image (a phone's photo format), which imgrec does not pack yet:"
            " convert it to JPEG or PNG first"
        )
    if brands & AVIF_BRANDS:
        return "an AVIF image, which this Pillow cannot read: install a Pillow built with AVIF"
    return None


def _brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an 'ftyp' box at the start of ``head``."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return set()
    size = min(int.from_bytes(head[:4], "big"), len(head))
    found = {head[8:12]}
    found.update(head[i : i + 4] for i in range(16, size - 3, 4))
    return found
