"""Environments: aliases followed to their target, groups flattened to block names.

Groups are taken in alphabetical order, with `plugins` last; within a group the
listed order is kept, and a block listed twice is kept where it first appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zocalo_core._config._blocks import RESERVED_KEYS
from zocalo_core._config._files import Entry, EnvironmentDefinition, SiteDefinitions
from zocalo_core._config._problems import Location, Problems

DEFAULT_ENVIRONMENT = "default"
LAST_GROUP = "plugins"


@dataclass(frozen=True)
class ResolvedEnvironment:
    """An environment's blocks in activation order; `alias_of` names its target."""

    name: str
    location: Location
    blocks: tuple[str, ...]
    alias_of: str | None = None


def _names(names: Iterable[object]) -> str:
    listed = sorted(str(name) for name in names)
    return ", ".join(listed) if listed else "none"


def flatten_groups(groups: Mapping[str, tuple[Entry, ...]]) -> list[Entry]:
    """The entries of every group in activation order, each block once."""
    order = sorted(group for group in groups if group != LAST_GROUP)
    if LAST_GROUP in groups:
        order.append(LAST_GROUP)
    seen: set[str] = set()
    flattened = []
    for group in order:
        for entry in groups[group]:
            if entry.block not in seen:
                seen.add(entry.block)
                flattened.append(entry)
    return flattened


def _flatten(
    environment: EnvironmentDefinition, site: SiteDefinitions, problems: Problems
) -> tuple[str, ...] | None:
    subject = f"environment {environment.name!r}"
    blocks = []
    valid = True
    for entry in flatten_groups(environment.groups):
        if entry.block in RESERVED_KEYS:
            message = (
                f"lists {entry.block!r}, which is a reserved top-level key, not a "
                "block; remove it from the list"
            )
            problems.add(entry.location, subject, message)
            valid = False
        elif entry.block not in site.blocks:
            message = (
                f"lists block {entry.block!r}, which is not defined; defined blocks: "
                f"{_names(site.blocks)}"
            )
            problems.add(entry.location, subject, message)
            valid = False
        else:
            blocks.append(entry.block)
    return tuple(blocks) if valid else None


def _check_alias(
    environment: EnvironmentDefinition, site: SiteDefinitions, problems: Problems
) -> bool:
    target = environment.alias
    assert target is not None
    if target in site.environments:
        return True
    if target in site.blocks:
        message = (
            f"is an alias of {target!r}, which is a block, not an environment; "
            f"write `{environment.name}: [{target}]` to use the block"
        )
    else:
        message = (
            f"is an alias of {target!r}, which is not defined; defined "
            f"environments: {_names(site.environments)}"
        )
    problems.add(environment.location, f"environment {environment.name!r}", message)
    return False


def _alias_target(
    environment: EnvironmentDefinition, site: SiteDefinitions, problems: Problems
) -> str | None:
    """Follow an alias chain; a broken link is reported by the alias that has it."""
    chain = [environment.name]
    current = environment
    while current.alias is not None:
        target = current.alias
        if target in chain:
            if target == environment.name:
                cycle = " -> ".join([*chain, target])
                message = (
                    f"is an alias in a cycle: {cycle}; make one of these a list of "
                    "blocks"
                )
                subject = f"environment {environment.name!r}"
                problems.add(environment.location, subject, message)
            return None
        if target not in site.environments:
            return None
        chain.append(target)
        current = site.environments[target]
    return current.name


def resolve_environments(
    site: SiteDefinitions, problems: Problems
) -> dict[str, ResolvedEnvironment]:
    """Every environment of `site` that is valid, by name; the rest are reported."""
    resolved: dict[str, ResolvedEnvironment] = {}
    for name, environment in site.environments.items():
        if environment.alias is None:
            blocks = _flatten(environment, site, problems)
            if blocks is not None:
                resolved[name] = ResolvedEnvironment(name, environment.location, blocks)
    for name, environment in site.environments.items():
        if environment.alias is None or not _check_alias(environment, site, problems):
            continue
        target = _alias_target(environment, site, problems)
        if target is not None and target in resolved:
            blocks = resolved[target].blocks
            location = environment.location
            resolved[name] = ResolvedEnvironment(name, location, blocks, target)
    return resolved
