"""``label_map.pbtxt`` beside the shards: the object classes in the text format of the TF
Object Detection API's ``StringIntLabelMap`` (``label_map_util.load_labelmap`` reads it).
The ids are the dataset's own, as its records carry them."""

from __future__ import annotations

import json

from ...core.storage import Folder
from ...format.layout import LABEL_MAP
from ...format.manifest import Manifest


def text(classes: dict[int, str]) -> str:
    """The label map of ``classes`` (id -> name), in id order. Names are written as JSON
    strings, whose escapes protobuf's text format reads the same way."""
    items = []
    for ident, name in sorted(classes.items()):
        quoted = json.dumps(name, ensure_ascii=True)
        items.append(f"item {{\n  id: {ident}\n  name: {quoted}\n  display_name: {quoted}\n}}\n")
    return "".join(items)


def write(folder: Folder, manifest: Manifest) -> None:
    """Write the dataset's label map, or remove an earlier pack's when it has none."""
    classes = manifest.annotations.classes if manifest.annotations is not None else {}
    if classes:
        folder.write(LABEL_MAP, text(classes).encode("utf-8"))
    else:
        folder.delete(LABEL_MAP)
