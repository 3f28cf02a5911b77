"""How ``imgrec inspect`` prints a summary as text (``--json`` prints the dict itself), and
what ``imgrec pack`` and ``convert`` print when done (or, with ``--dry-run``, planned)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .common import emit_json, human_bytes

if TYPE_CHECKING:
    from ..format.manifest import Manifest


def print_summary(summary: dict[str, Any]) -> None:
    """A dataset summary (``InspectResult.to_dict()``), as ``imgrec inspect`` shows it."""
    _print_counts(summary)
    _print_sizes(summary)
    _print_labels(summary)
    _print_objects(summary)


def _print_counts(summary: dict[str, Any]) -> None:
    click.echo(f"records:   {summary['records']}")
    click.echo(f"shards:    {len(summary['shards'])}, {human_bytes(summary['bytes'])}")
    for key in ("formats", "dtypes", "channels"):
        click.echo(f"{key + ':':<10} " + ", ".join(f"{k} {v}" for k, v in summary[key].items()))
    mix = set(summary["channels"])
    if mix == {"1", "3"}:
        click.echo("           (gray and colour: batched together as RGB)")
    elif len(mix) > 1:
        click.echo("           (alpha in a mix: read with channels=3 or 4 to batch them)")


def _print_sizes(summary: dict[str, Any]) -> None:
    if summary["height"]:
        h, w = summary["height"], summary["width"]
        click.echo(f"height:    {h['min']}..{h['max']}")
        click.echo(f"width:     {w['min']}..{w['max']}")
    click.echo(f"stored:    {human_bytes(summary['avg_stored_bytes'])} per image on average")
    if summary["stored_to_dense_uint8"] is not None:
        click.echo(
            f"vs dense:  {summary['stored_to_dense_uint8']:.1%} of the decoded uint8 size"
            f" ({human_bytes(summary['dense_uint8_bytes'])})"
        )


def _print_labels(summary: dict[str, Any]) -> None:
    if summary["splits"]:
        click.echo("splits:    " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
        for name, per_class in summary["split_labels"].items():
            click.echo(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo("labels:")
    width = max((len(k) for k in summary["labels"]), default=0)
    for name, count in summary["labels"].items():
        click.echo(f"  {name:<{width}}  {count}")
    if "preview" in summary:
        p = summary["preview"]
        if p["path"] is None:
            click.echo("preview:   nothing to preview: no readable records; no file written")
        else:
            boxes = f", {p['boxes']} boxes drawn" if "boxes" in p else ""
            if "keypoints" in p:
                boxes += f", {p['keypoints']} keypoints"
            click.echo(
                f"preview:   {p['path']} ({p['images']} images, {p['columns']}x{p['rows']}{boxes})"
            )
    for problem in summary["problems"]:
        click.echo(f"problem: {problem}", err=True)


def _print_objects(summary: dict[str, Any]) -> None:
    """Objects by class, images without any, box sizes; the per-image columns."""
    objects, about = summary.get("objects"), summary.get("annotations")
    if objects is not None:
        click.echo(
            f"objects:   {objects['objects']} in {objects['records']} images"
            f" ({objects['without_objects']} without objects)"
        )
        if objects["box_width"]:
            (w0, w1), (h0, h1) = objects["box_width"], objects["box_height"]
            click.echo(f"boxes:     width {w0:g}..{w1:g} px, height {h0:g}..{h1:g} px (stored)")
        width = max((len(k) for k in objects["by_class"]), default=0)
        for name, count in objects["by_class"].items():
            click.echo(f"  {name:<{width}}  {count}")
        points = objects.get("keypoints")
        if points is not None:
            click.echo(
                f"keypoints: {points['labelled']} labelled ({points['visible']} visible) in"
                f" {points['records']} images"
            )
    profiles = summary.get("profiles")
    if profiles is not None:
        counted = ", ".join(f"{kind} {n}" for kind, n in profiles.items())
        click.echo(f"colour:    ICC profiles of the sources: {counted}")
    masks = summary.get("masks")
    if masks is not None:
        held = ", ".join(f"{c} {n}" for c, n in masks["images_by_class"].items())
        click.echo(f"masks:     {masks['records']} images; images per class: {held}")
    if about is not None:
        if about["columns"]:
            columns = ", ".join(f"{k} ({t})" for k, t in about["columns"].items())
            click.echo(f"columns:   {columns}")
        for warning in about["warnings"]:
            click.echo(f"warning: {warning}", err=True)


def print_packed(packed: Manifest, out: str, seconds: float, as_json: bool) -> None:
    from ..core import storage

    manifest = packed.to_dict()
    annotations = packed.annotations.warnings if packed.annotations else []
    for warning in [*packed.split_warnings(), *annotations]:
        click.echo(f"warning: {warning}", err=True)
    where = storage.join(storage.location(out), "manifest.json")
    if as_json:
        emit_json({"out": str(storage.location(out)), "manifest": str(where),
                   "seconds": round(seconds, 3), **manifest})  # fmt: skip
        return
    stats = manifest["stats"]
    sizes = [s["bytes"] for s in manifest["shards"]]
    click.echo(f"Packed {manifest['records']} images into {len(sizes)} shard(s),"
               f" {human_bytes(sum(sizes))}, in {seconds:.1f} s"
               f" ({manifest['records'] / max(seconds, 1e-9):.0f} images/s)")  # fmt: skip
    if len(sizes) > 1:
        click.echo(f"  shards of {human_bytes(min(sizes))} to {human_bytes(max(sizes))}")
    counts = stats["labels"]
    for label in [*manifest["labels"], *[k for k in counts if k not in manifest["labels"]]]:
        click.echo(f"  {label}: {counts.get(label, 0)}")
    for name, s in manifest.get("splits", {}).items():
        order = [*manifest["labels"], *[k for k in s["labels"] if k not in manifest["labels"]]]
        per_class = ", ".join(f"{label} {s['labels'].get(label, 0)}" for label in order)
        click.echo(f"  split {name}: {s['records']} images ({per_class})")
    if o := stats.get("objects"):
        click.echo(f"  objects: {o['objects']} of {len(o['by_class'])} classes (label_map.pbtxt);"
                   f" {o['without_objects']} images without objects")  # fmt: skip
    click.echo(
        f"Ignored {manifest['ignored']} non-image file(s); skipped {len(manifest['skipped'])}."
    )
    print_skipped(manifest["skipped"])
    if manifest["transcoded"]:
        click.echo(f"Transcoded {len(manifest['transcoded'])} image(s) (see the manifest).")
    click.echo(f"Manifest: {where}")


def print_skipped(skipped: list[dict[str, str]]) -> None:
    for s in skipped[:5]:
        click.echo(f"  skipped {s['path']}: {s['reason']}")
    if len(skipped) > 5:
        click.echo(f"  ... and {len(skipped) - 5} more")


def print_plan(p: dict[str, Any]) -> None:
    click.echo(f"Dry run: nothing written. {p['images']} images would go to {p['out']}:")
    for label, count in p["labels"].items():
        click.echo(f"  {label}: {count}")
    click.echo(f"Ignored {p['ignored']} non-image file(s); would skip {len(p['skipped'])}.")
    print_skipped(p["skipped"])
    dense = human_bytes(p["dense_bytes"])
    if p["estimated_bytes"] is not None:
        ratio = p["estimated_bytes"] / p["dense_bytes"] if p["dense_bytes"] else 0
        click.echo(
            f"Estimated size as {p['format']}: {human_bytes(p['estimated_bytes'])}"
            f" ({ratio:.0%} of the {dense} of decoded pixels)"
        )
    for part in p["shards"]:
        click.echo(f"Shards: {part['shards']} x {part['name']} ({part['images']} images)")
