"""What every `zocalo` command shares: the site options and how they open a site."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from zocalo_core._config import SiteConfiguration, load
from zocalo_core._errors import ConfigurationError

if TYPE_CHECKING:
    from zocalo_core._records import TransportPlugin
    from zocalo_core.transport import Transport

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
        """Load the site file (or `$ZOCALO_CONFIG`) once; activate the environments."""
        if self._site is None:
            site = load(self.config_path)
            site.activate(self.environments)
            self._site = site
        return self._site

    def transport_name(self) -> str | None:
        """`-t`, else the `transport` block, else the storage default, or None."""
        return self.open_site().transport_name(self.transport)

    def broker_transport(self) -> Transport:
        """A new transport to a real broker, for commands that talk to other processes.

        Such commands never fall back to the in-process `memory` transport: with no
        broker configured they fail with one line that says what to do.
        """
        name = self.transport_name()
        if name == "memory":
            raise ConfigurationError(MEMORY_IS_IN_PROCESS_MESSAGE)
        if name is None:
            raise ConfigurationError(NO_BROKER_MESSAGE)
        return make_transport(name, self.open_site())

    def embedded_transport(self) -> Transport:
        """A new transport for a command that may run on the embedded broker."""
        return make_transport(self.transport_name() or "memory", self.open_site())


NO_BROKER_MESSAGE = (
    "no message broker is configured: add a `transport` block (plugin: transport, "
    "default: pika) and a `pika` block to the site file, or pass -t pika; "
    "to run a recipe inside one process on the embedded transport use `zocalo run`"
)


MEMORY_IS_IN_PROCESS_MESSAGE = (
    "the memory transport lives inside one process, so this command would reach no "
    "other service: choose a broker transport (-t pika), or use `zocalo run` to run "
    "a recipe inside one process"
)


def make_transport(name: str, site: SiteConfiguration | None) -> Transport:
    """Build the installed transport called `name` (an error lists the known ones)."""
    from zocalo_core._plugins import get_registry

    record: TransportPlugin = get_registry().get("transport", name)
    return record.factory(site)


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
        help="Site environment to activate; may be repeated (default: `default`).",
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
