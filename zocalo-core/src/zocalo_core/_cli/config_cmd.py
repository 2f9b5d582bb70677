"""`zocalo config show|check`: what the site configuration sets, and if it works."""

from __future__ import annotations

import logging
import os

import click
import yaml

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._config import ConfigurationProblems, SiteConfiguration, load
from zocalo_core._errors import ConfigurationError

logger = logging.getLogger(__name__)


@click.group()
def config() -> None:
    """Show or check the site configuration."""


@config.command()
@site_options
def show(site: SiteOptions) -> None:
    """Activate the site's environments and print what they set, secrets masked.

    The output is YAML: the active environments, the transport that would be used
    and every activated block with its settings.
    """
    configuration = site.open_site()
    description = configuration.describe()
    description["transport"] = configuration.transport_name(site.transport)
    click.echo(yaml.safe_dump(description, sort_keys=False), nl=False)


def _file_to_check(file: str | None, site: SiteOptions) -> str:
    if file and site.config_path and file != site.config_path:
        message = (
            f"give the site file once: FILE is {file!r} but -c is {site.config_path!r}"
        )
        raise click.UsageError(message)
    chosen = file or site.config_path or os.environ.get("ZOCALO_CONFIG", "").strip()
    if not chosen:
        raise click.UsageError("give the site file to check, or set ZOCALO_CONFIG")
    return chosen


def _load_for_check(path: str) -> SiteConfiguration:
    try:
        return load(path)
    except ConfigurationProblems as exc:
        for problem in exc.problems:
            click.echo(problem)
        count = len(exc.problems)
        noun = "problem" if count == 1 else "problems"
        them = "it" if count == 1 else "them"
        message = f"{path}: {count} {noun} found; fix {them} and check again"
        raise ConfigurationError(message) from exc


def _report_line(name: str, skipped: tuple[str, ...]) -> str:
    if not skipped:
        return f"{name}: ok"
    blocks = ", ".join(repr(block) for block in skipped)
    return f"{name}: ok (skipped, config plugin not installed: {blocks})"


@config.command()
@click.argument("file", required=False)
@site_options
def check(file: str | None, site: SiteOptions) -> None:
    """Check a site file and every environment in it, activating nothing.

    Block files are read and every block is checked against its config plugin, but
    no plugin runs. With -e only the given environments are checked. Prints one line
    per environment; exits 1 if anything is wrong. -t is not used.
    """
    path = _file_to_check(file, site)
    configuration = _load_for_check(path)
    names = site.environments or tuple(sorted(configuration.environments))
    if not names:
        click.echo(f"{configuration.path}: ok (no environments are defined)")
        return
    failed = []
    for name in names:
        report = configuration.check_environment(name)
        if report.ok:
            click.echo(_report_line(name, report.skipped))
            continue
        failed.append(name)
        for problem in report.problems:
            click.echo(f"{name}: {problem}")
    if failed:
        listed = ", ".join(failed)
        message = (
            f"{path}: environments with problems: {listed}; fix them and check again"
        )
        raise ConfigurationError(message)
