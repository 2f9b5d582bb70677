"""`zocalo plugins`: what is installed, by kind, name and distribution."""

from __future__ import annotations

import click

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._plugins import get_registry


@click.command()
@site_options
def plugins(site: SiteOptions) -> None:
    """List every installed plugin by kind, name and distribution."""
    entries = sorted(
        get_registry().all_entries(), key=lambda e: (e.kind, e.name.lower())
    )
    if not entries:
        click.echo("no plugins are installed")
        return
    kind_width = max(len(entry.kind) for entry in entries)
    name_width = max(len(entry.name) for entry in entries)
    dist_width = max(len(entry.distribution) for entry in entries)
    for entry in entries:
        click.echo(
            f"{entry.kind:<{kind_width}}  {entry.name:<{name_width}}  "
            f"{entry.distribution:<{dist_width}}  {entry.summary}".rstrip()
        )
