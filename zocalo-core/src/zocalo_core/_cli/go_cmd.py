"""`zocalo go`: send a processing request to the Dispatcher and print its recipe ID."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import click

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._cli.request import (
    PROCESSING_QUEUE,
    build_request,
    describe_request,
    request_headers,
    request_options,
)
from zocalo_core._errors import ZocaloError

logger = logging.getLogger(__name__)

FALLBACK_KEY = "zocalo.go.fallback_location"


@click.command()
@request_options
@click.option("--dry-run", is_flag=True, help="Show the request; send nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Show the request before sending.")
@site_options
def go(
    site: SiteOptions,
    recipes: tuple[str, ...],
    recipe_file: str | None,
    settings: tuple[str, ...],
    no_id: bool,
    dry_run: bool,
    verbose: bool,
    ids: tuple[str, ...],
) -> None:
    """Send a processing request to the Dispatcher; prints the new recipe ID."""
    request = build_request(
        recipes=recipes,
        recipe_file=recipe_file,
        settings=settings,
        ids=ids,
        no_id=no_id,
    )
    recipe_id = request["parameters"]["guid"]
    if verbose or dry_run:
        click.echo(describe_request(request), err=True)
    if dry_run:
        click.echo("dry run: nothing was sent", err=True)
        click.echo(recipe_id)
        return
    _send(site, request)
    click.echo(recipe_id)


def _send(site: SiteOptions, request: dict[str, Any]) -> None:
    headers = request_headers()
    transport = site.broker_transport()
    try:
        with transport:
            transport.send(PROCESSING_QUEUE, request, headers=headers)
    except ZocaloError as exc:
        configuration = site.open_site()
        fallback = configuration.storage.get(FALLBACK_KEY)
        if not fallback:
            raise
        folder = Path(str(fallback)).expanduser()
        if not folder.is_absolute() and configuration.path is not None:
            folder = configuration.path.parent / folder
        stored = store_in_fallback(folder, headers, request)
        click.echo(
            f"zocalo: could not send ({exc}); stored the request in {stored}", err=True
        )


def store_in_fallback(
    folder: Path, headers: dict[str, str], request: dict[str, Any]
) -> Path:
    """Write the request where a later pickup can send it; never overwrites a file.

    The file is named after the recipe ID, with a random suffix if that name is taken.
    """
    folder.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"headers": headers, "message": request}, indent=2) + "\n"
    recipe_id = str(request["parameters"]["guid"])
    name = recipe_id
    while True:
        path = folder / name
        name = f"{recipe_id}.{uuid.uuid4().hex[:8]}"
        try:
            with path.open("x", encoding="utf-8") as stream:
                stream.write(content)
        except FileExistsError:
            continue
        return path
