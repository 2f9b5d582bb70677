"""What every `zocalo` command shares: the site options and how they open a site."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from zocalo_core._config import SiteConfiguration, load

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class SiteOptions:
    """The `-c`, `-e`, `-t` and `--debug` options as given to one command."""

    config_path: str | None
    environments: tuple[str, ...]
    transport: str | None
    debug: bool
    _site: SiteConfiguration | None = None

    def open_site(self) -> SiteConfiguration:
        """Load the site file (or `$ZOCALO_CONFIG`) once and activate its environments."""
        if self._site is None:
            site = load(self.config_path)
            site.activate(self.environments)
            self._site = site
        return self._site


def site_options(command: F) -> F:
    """Add `-c/--config`, `-e/--environment`, `-t/--transport` and `--debug`.

    The decorated command receives one `site` argument, a `SiteOptions`.
    """

    @click.option(
        "-c",
        "--config",
        "config_path",
        metavar="FILE",
        default=None,
        help="Site configuration file (default: $ZOCALO_CONFIG).",
    )
    @click.option(
        "-e",
        "--environment",
        "environments",
        metavar="ENV",
        multiple=True,
        help="Site environment to activate; may be repeated (default: the site's default).",
    )
    @click.option(
        "-t",
        "--transport",
        metavar="NAME",
        default=None,
        help="Transport to use, overriding the site configuration.",
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        config_path: str | None,
        environments: tuple[str, ...],
        transport: str | None,
        debug: bool,
        **kwargs: Any,
    ) -> Any:
        options = SiteOptions(config_path, environments, transport, debug)
        return command(*args, site=options, **kwargs)

    return wrapper  # type: ignore[return-value]


def debug_requested(argv: list[str]) -> bool:
    """Whether `--debug` was given anywhere before a `--`, or `ZOCALO_DEBUG` is set."""
    if os.environ.get("ZOCALO_DEBUG"):
        return True
    for argument in argv:
        if argument == "--":
            return False
        if argument == "--debug":
            return True
    return False
