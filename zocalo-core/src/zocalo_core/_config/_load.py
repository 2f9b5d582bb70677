"""`load()`: from a path (or `$ZOCALO_CONFIG`) to a checked `SiteConfiguration`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from zocalo_core import _plugins
from zocalo_core._config._blocks import (
    ResolvedBlock,
    check_definition,
    inline_block,
    validate_block,
)
from zocalo_core._config._environments import resolve_environments
from zocalo_core._config._files import SiteDefinitions, read_site_file
from zocalo_core._config._problems import Problems
from zocalo_core._config._site import ParsedSite, SiteConfiguration
from zocalo_core._config._yaml import read_failure, read_yaml_file
from zocalo_core._errors import ConfigurationError
from zocalo_core._records import ConfigPlugin

logger = logging.getLogger(__name__)

CONFIG_VARIABLE = "ZOCALO_CONFIG"


def _installed_config_plugins() -> dict[str, ConfigPlugin]:
    # Looked up on every load, through the module, so that a registry rebuilt (or
    # replaced by a test) since the last load is the one used.
    entries = _plugins.get_registry().entries("config plugin")
    return {name: entry.record for name, entry in entries.items()}


def _chosen_path(path: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser(), ""
    from_variable = os.environ.get(CONFIG_VARIABLE, "").strip()
    if from_variable:
        return Path(from_variable).expanduser(), f" (from {CONFIG_VARIABLE})"
    return None, ""


def _inline_blocks(
    site: SiteDefinitions, plugins: Mapping[str, ConfigPlugin], problems: Problems
) -> dict[str, ResolvedBlock]:
    inline = {}
    for name, definition in site.blocks.items():
        check_definition(definition, problems)
        if isinstance(definition.value, Mapping):
            block = inline_block(definition, problems)
            if block is not None:
                validate_block(block, plugins.get(block.plugin), problems)
                inline[name] = block
    return inline


def parse_site(path: Path, origin: str = "") -> ParsedSite:
    """Read and check a site file with its includes; raise every problem found."""
    resolved = path.resolve()
    try:
        document = read_yaml_file(resolved)
    except OSError as exc:
        message = (
            f"site configuration file {path}{origin} {read_failure(exc)}; check the "
            "path"
        )
        raise ConfigurationError(message) from exc
    problems = Problems()
    site = read_site_file(document, problems)
    plugins = _installed_config_plugins() if site.blocks else {}
    inline = _inline_blocks(site, plugins, problems)
    environments = resolve_environments(site, problems)
    problems.raise_if_any()
    return ParsedSite(
        resolved, tuple(site.files), dict(site.blocks), inline, environments, plugins
    )


def load(path: str | os.PathLike[str] | None = None) -> SiteConfiguration:
    """Load a site configuration file, checking it; nothing is activated yet.

    Without `path` (or with an empty one) `$ZOCALO_CONFIG` is used; when that is
    unset or empty too, the result is an empty configuration. Every call reads the
    files again and returns an independent object.
    """
    chosen, origin = _chosen_path(path)
    if chosen is None:
        logger.debug("no site configuration file given; using an empty one")
        return SiteConfiguration()
    logger.debug("loading site configuration %s%s", chosen, origin)
    return SiteConfiguration(parse_site(chosen, origin))
