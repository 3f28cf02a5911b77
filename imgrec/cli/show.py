"""How ``imgrec inspect`` prints a summary as text (``--json`` prints the dict itself)."""

from __future__ import annotations

from typing import Any

import click

from .common import human_bytes


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
        click.echo("           (gray and colour: read together as RGB)")
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
