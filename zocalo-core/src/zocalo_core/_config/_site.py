"""`SiteConfiguration`: a parsed site file, its environments and what activating did."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zocalo_core._config._blocks import (
    BlockDefinition,
    ResolvedBlock,
    mask_settings,
    read_block_file,
    validate_block,
)
from zocalo_core._config._environments import DEFAULT_ENVIRONMENT, ResolvedEnvironment
from zocalo_core._config._problems import Problems
from zocalo_core._config.core_plugins import transport_name_from_legacy
from zocalo_core._errors import ConfigurationError, ZocaloError
from zocalo_core._records import ConfigPlugin

logger = logging.getLogger(__name__)

DEFAULT_ENV_VARIABLE = "ZOCALO_DEFAULT_ENV"
STORAGE_TRANSPORT_KEY = "zocalo.default_transport"


@dataclass(frozen=True)
class ParsedSite:
    """What loading a site file found; checked, and never changed afterwards."""

    path: Path
    files: tuple[Path, ...]
    blocks: Mapping[str, BlockDefinition]
    inline_blocks: Mapping[str, ResolvedBlock]
    environments: Mapping[str, ResolvedEnvironment]
    config_plugins: Mapping[str, ConfigPlugin]


@dataclass(frozen=True)
class EnvironmentReport:
    """What checking one environment found, without activating anything."""

    name: str
    blocks: tuple[str, ...]
    skipped: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Activated:
    block: ResolvedBlock
    installed: bool


class SiteConfiguration:
    """A site configuration: its environments, and the blocks activated so far.

    Get one from `zocalo_core.load()`; `SiteConfiguration()` is an empty one. Each
    object holds its own copy of everything it read, so activating one never
    changes another loaded from the same file.
    """

    def __init__(self, parsed: ParsedSite | None = None) -> None:
        self._parsed = parsed
        self._file_blocks: dict[str, ResolvedBlock] = {}
        self._active: list[str] = []
        self._activated: dict[str, _Activated] = {}
        self._results: dict[str, Any] = {}

    @property
    def path(self) -> Path | None:
        """The site file, or None for an empty configuration."""
        return self._parsed.path if self._parsed else None

    @property
    def environments(self) -> frozenset[str]:
        """The names of every defined environment, aliases included."""
        return frozenset(self._parsed.environments) if self._parsed else frozenset()

    @property
    def active_environments(self) -> tuple[str, ...]:
        return tuple(self._active)

    @property
    def blocks(self) -> frozenset[str]:
        """The names of every block the site file (with its includes) defines."""
        return frozenset(self._parsed.blocks) if self._parsed else frozenset()

    def _where(self) -> str:
        if self._parsed is None:
            return (
                "no site configuration file is loaded; pass -c FILE or set "
                "ZOCALO_CONFIG"
            )
        defined = ", ".join(sorted(self._parsed.environments)) or "none"
        return f"{self._parsed.path} defines: {defined}"

    def _environment(self, name: str, origin: str = "") -> ResolvedEnvironment:
        environment = self._parsed.environments.get(name) if self._parsed else None
        if environment is None:
            message = f"environment {name!r}{origin} is not defined; {self._where()}"
            raise ConfigurationError(message)
        return environment

    def _requested(self, environments: Sequence[str], default: bool) -> list[str]:
        names = [environments] if isinstance(environments, str) else environments
        if names:
            for name in names:
                self._environment(name)
            return list(dict.fromkeys(names))
        if not default:
            return []
        from_variable = os.environ.get(DEFAULT_ENV_VARIABLE, "").strip()
        if from_variable:
            self._environment(from_variable, f" (from {DEFAULT_ENV_VARIABLE})")
            return [from_variable]
        return [DEFAULT_ENVIRONMENT] if DEFAULT_ENVIRONMENT in self.environments else []

    def _resolved_block(self, name: str, problems: Problems) -> ResolvedBlock | None:
        assert self._parsed is not None
        inline = self._parsed.inline_blocks.get(name)
        if inline is not None:
            return inline
        cached = self._file_blocks.get(name)
        if cached is not None:
            return cached
        found = Problems()
        block = read_block_file(self._parsed.blocks[name], found)
        if block is not None:
            record = self._parsed.config_plugins.get(block.plugin)
            validate_block(block, record, found)
        problems.extend(found.messages)
        if block is None or found:
            return None
        self._file_blocks[name] = block
        return block

    def _blocks_of(self, name: str, problems: Problems) -> list[ResolvedBlock]:
        blocks = []
        for block_name in self._environment(name).blocks:
            block = self._resolved_block(block_name, problems)
            if block is not None:
                blocks.append(block)
        return blocks

    def check_environment(self, name: str) -> EnvironmentReport:
        """Read and check every block of one environment, activating nothing."""
        problems = Problems()
        blocks = self._blocks_of(name, problems)
        assert self._parsed is not None
        skipped = tuple(
            block.name
            for block in blocks
            if block.plugin not in self._parsed.config_plugins
        )
        names = self._environment(name).blocks
        return EnvironmentReport(name, names, skipped, tuple(problems.messages))

    def check_environments(self) -> tuple[EnvironmentReport, ...]:
        """`check_environment` for every defined environment, by name."""
        return tuple(self.check_environment(name) for name in sorted(self.environments))

    def activate(
        self, environments: Sequence[str] = (), *, default: bool = True
    ) -> tuple[str, ...]:
        """Activate environments in order (by default ZOCALO_DEFAULT_ENV or `default`).

        Every block of every requested environment is read and checked before any
        plugin runs, so a broken block file changes nothing. A block runs at most once
        per configuration, however many environments list it. Returns the names of
        the environments used.
        """
        names = self._requested(environments, default)
        pending: dict[str, ResolvedBlock] = {}
        problems = Problems()
        for name in names:
            if name not in self._active:
                for block in self._blocks_of(name, problems):
                    if block.name not in self._activated:
                        pending.setdefault(block.name, block)
        problems.raise_if_any()
        for block in pending.values():
            self._run(block)
        for name in names:
            if name not in self._active:
                self._active.append(name)
                logger.info("activated site environment %r", name)
        return tuple(names)

    def _run(self, block: ResolvedBlock) -> None:
        assert self._parsed is not None
        record = self._parsed.config_plugins.get(block.plugin)
        if record is None:
            logger.debug(
                "skipping %s: plugin %r is not installed", block.subject, block.plugin
            )
            self._activated[block.name] = _Activated(block, installed=False)
            return
        subject = f"{block.location}: {block.subject} (plugin {block.plugin!r})"
        try:
            result = record.activate(block.copy_settings(), self)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{subject}: {exc}") from exc
        except ZocaloError:
            raise
        except Exception as exc:
            message = f"{subject}: activating it failed: {type(exc).__name__}: {exc}"
            raise ConfigurationError(message) from exc
        self._results[block.plugin] = result
        self._activated[block.name] = _Activated(block, installed=True)
        logger.debug("activated %s with plugin %r", block.subject, block.plugin)

    def plugin(self, name: str) -> Any:
        """What the config plugin `name` returned when last activated, else None."""
        return self._results.get(name)

    @property
    def storage(self) -> dict[str, Any]:
        """A copy of the merged settings of every activated `storage` block."""
        return dict(copy.deepcopy(self._results.get("storage") or {}))

    def block_settings(self, plugin_name: str) -> dict[str, Any] | None:
        """The settings of the activated blocks of one config plugin, merged.

        Keys of later blocks win; the `plugin` key is left out. None when no block of
        that plugin is active. Transports read their connection settings here, e.g.
        `site.block_settings("pika")`. Returns a copy.
        """
        merged: dict[str, Any] | None = None
        for activated in self._activated.values():
            if activated.installed and activated.block.plugin == plugin_name:
                merged = (merged or {}) | activated.block.copy_settings()
        return merged

    def transport_name(self, override: str | None = None) -> str | None:
        """The transport to use: `override` (`-t`), the `transport` block, storage.

        The existing names `PikaTransport` and `StompTransport` become `pika` and
        `stomp`. Whether that transport is installed is not checked here.
        """
        if override:
            return transport_name_from_legacy(override)
        transport = self.block_settings("transport")
        if transport and isinstance(transport.get("default"), str):
            return transport_name_from_legacy(transport["default"])
        from_storage = self.storage.get(STORAGE_TRANSPORT_KEY)
        if from_storage is None:
            return None
        if not isinstance(from_storage, str) or not from_storage:
            message = (
                f"storage key {STORAGE_TRANSPORT_KEY!r} must be a transport name, not "
                f"{type(from_storage).__name__}; fix it in the site file"
            )
            raise ConfigurationError(message)
        return transport_name_from_legacy(from_storage)

    def describe(self) -> dict[str, Any]:
        """The active environments and activated blocks, secrets masked, for display."""
        config_plugins = self._parsed.config_plugins if self._parsed else {}
        blocks: dict[str, Any] = {}
        for name, activated in self._activated.items():
            block = activated.block
            record = config_plugins.get(block.plugin)
            status = "activated" if activated.installed else "skipped: not installed"
            blocks[name] = {
                "plugin": block.plugin,
                "from": str(block.location),
                "status": status,
                "settings": mask_settings(block.settings, record),
            }
        return {
            "file": str(self.path) if self.path else None,
            "files": [str(file) for file in self._parsed.files] if self._parsed else [],
            "environments": sorted(self.environments),
            "active_environments": list(self._active),
            "transport": self.transport_name(),
            "blocks": blocks,
        }

    def __repr__(self) -> str:
        if self._parsed is None:
            return "<SiteConfiguration empty>"
        unread = sum(
            1
            for name, definition in self._parsed.blocks.items()
            if definition.block_file is not None and name not in self._file_blocks
        )
        active = ", ".join(self._active) or "none"
        return (
            f"<SiteConfiguration {self._parsed.path}: "
            f"{len(self._parsed.environments)} environments, "
            f"{len(self._parsed.blocks)} blocks ({unread} block files not read), "
            f"active: {active}>"
        )
