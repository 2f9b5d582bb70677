"""`zocalo service -s NAME`: run one service until it is told to stop."""

from __future__ import annotations

import logging
import sys

import click

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._plugins import get_registry
from zocalo_core._service.lookup import match_service_name
from zocalo_core._service.runner import RunnerOptions, ServiceRunner
from zocalo_core._service.supervisor import Supervisor, child_command
from zocalo_core._version import __version__

logger = logging.getLogger(__name__)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"zocalo, version {__version__}")
        ctx.exit()


def apply_verbosity(site: SiteOptions, verbose: int) -> None:
    """`-v` steps: the site's `logging` verbosity levels if it has them, else root."""
    if not verbose:
        return
    logging_levels = site.open_site().plugin("logging")
    if logging_levels is not None and hasattr(logging_levels, "verbosity"):
        logging_levels.verbosity = verbose
    else:
        logging.getLogger().setLevel(logging.INFO if verbose == 1 else logging.DEBUG)


@click.command()
@click.option(
    "-s",
    "--service",
    "service_name",
    required=True,
    metavar="NAME",
    help="Service to run: exact name, any case, or a unique prefix.",
)
@click.option(
    "--tag", default=None, help="Label added to this instance's status messages."
)
@click.option("-v", "--verbose", count=True, help="More logging; repeat for more.")
@click.option(
    "-r",
    "--restart",
    is_flag=True,
    help="Run the service in a child process and restart it when it crashes.",
)
@click.option(
    "--grace-period",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a SIGTERM waits for the current message before returning it.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@site_options
def service(
    site: SiteOptions,
    service_name: str,
    tag: str | None,
    verbose: int,
    restart: bool,
    grace_period: float,
) -> None:
    """Run one service on the site's broker until a shutdown command or SIGTERM."""
    registry = get_registry()
    name = match_service_name(service_name, registry.primary_names("service"))
    if restart:
        sys.exit(Supervisor(child_command(sys.argv[1:])).run())
    apply_verbosity(site, verbose)
    service_class = registry.get("service", name).service_class
    transport = site.broker_transport()
    options = RunnerOptions(tag=tag, grace_period=grace_period)
    runner = ServiceRunner(
        service_class, transport, site=site.open_site(), options=options
    )
    sys.exit(runner.run())
