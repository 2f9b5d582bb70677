"""Reading a site file and, depth first, the files it includes, into one definition.

Each file is a mapping with `version: 1`. Its `include:` entries are read after the
file itself, in order and recursively, and override what it defines: blocks are
replaced by name; of an environment defined in both, the `plugins` lists are joined
and every other group is replaced (an alias, on either side, replaces the whole
environment).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zocalo_core._config._blocks import RESERVED_KEYS, BlockDefinition
from zocalo_core._config._problems import Location, Problems, describe_value
from zocalo_core._config._yaml import (
    YamlDocument,
    YamlSyntaxError,
    read_failure,
    read_yaml_file,
)

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One block name listed by an environment, and where it is listed."""

    block: str
    location: Location


@dataclass(frozen=True)
class EnvironmentDefinition:
    """An environment as written: an alias of another one, or groups of entries."""

    name: str
    location: Location
    alias: str | None = None
    groups: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)


@dataclass
class SiteDefinitions:
    """Everything a site file and its includes define, after overriding."""

    blocks: dict[str, BlockDefinition] = field(default_factory=dict)
    environments: dict[str, EnvironmentDefinition] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _entries(
    value: list[Any], document: YamlDocument, path: tuple[str, ...], problems: Problems
) -> tuple[Entry, ...]:
    entries = []
    for index, item in enumerate(value):
        location = document.location(*path, index)
        if isinstance(item, str) and item:
            entries.append(Entry(item, location))
        else:
            message = f"lists {item!r}, which is not a block name; write names only"
            problems.add(location, f"environment {path[1]!r}", message)
    return tuple(entries)


def _groups(
    value: Mapping[Any, Any], document: YamlDocument, name: str, problems: Problems
) -> dict[str, tuple[Entry, ...]]:
    groups: dict[str, tuple[Entry, ...]] = {}
    for group, members in value.items():
        path = ("environments", name, str(group))
        if isinstance(members, str):
            groups[str(group)] = (Entry(members, document.location(*path)),)
        elif isinstance(members, list):
            groups[str(group)] = _entries(members, document, path, problems)
        else:
            found = describe_value(members)
            message = f"group {group!r} is {found}; give a list of block names"
            problems.add(document.location(*path), f"environment {name!r}", message)
    return groups


def _parse_environment(
    name: str, value: Any, document: YamlDocument, problems: Problems
) -> EnvironmentDefinition | None:
    location = document.location("environments", name)
    if isinstance(value, str) and value:
        return EnvironmentDefinition(name, location, alias=value)
    if isinstance(value, list):
        path = ("environments", name)
        plugins = _entries(value, document, path, problems)
        return EnvironmentDefinition(name, location, groups={"plugins": plugins})
    if isinstance(value, Mapping):
        groups = _groups(value, document, name, problems)
        return EnvironmentDefinition(name, location, groups=groups)
    found = describe_value(value)
    message = (
        f"is {found}; an environment is a list of block names, a mapping of groups "
        "to such lists, or the name of another environment"
    )
    problems.add(location, f"environment {name!r}", message)
    return None


def _parse_environments(
    document: YamlDocument, problems: Problems
) -> dict[str, EnvironmentDefinition]:
    value = document.data.get("environments")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        message = "must map environment names to their definitions"
        problems.add(document.location("environments"), "`environments`", message)
        return {}
    environments = {}
    for name, definition in value.items():
        if not isinstance(name, str):
            location = document.location("environments", str(name))
            problems.add(location, f"environment {name!r}", "its name must be text")
            continue
        parsed = _parse_environment(name, definition, document, problems)
        if parsed is not None:
            environments[name] = parsed
    return environments


def _parse_blocks(
    document: YamlDocument, problems: Problems
) -> dict[str, BlockDefinition]:
    blocks = {}
    for name, value in document.data.items():
        if name in RESERVED_KEYS:
            continue
        if not isinstance(name, str):
            location = document.location(str(name))
            message = "block names must be text; quote it"
            problems.add(location, f"block {name!r}", message)
            continue
        blocks[name] = BlockDefinition(name, value, document)
    return blocks


def _includes(document: YamlDocument, problems: Problems) -> list[tuple[str, Location]]:
    value = document.data.get("include")
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, document.location("include"))]
    if not isinstance(value, list):
        message = "must be a list of paths of other site files"
        problems.add(document.location("include"), "`include`", message)
        return []
    includes = []
    for index, item in enumerate(value):
        location = document.location("include", index)
        if isinstance(item, str) and item:
            includes.append((item, location))
        else:
            problems.add(location, "`include`", f"{item!r} is not a file path")
    return includes


def _check_version(document: YamlDocument, problems: Problems) -> bool:
    data = document.data
    top = Location(document.file)
    if not isinstance(data, Mapping):
        found = describe_value(data)
        message = f"the file is {found}; a site file is a mapping with `version: 1`"
        problems.add(top, "", message)
        return False
    if "version" not in data:
        message = "there is no `version` key; add `version: 1` at the top"
        problems.add(top, "", message)
        return False
    version = data["version"]
    if type(version) is not int or version != SUPPORTED_VERSION:
        message = (
            f"`version: {version}` is not supported; this Zocalo reads version "
            f"{SUPPORTED_VERSION} site files only"
        )
        if type(version) is not int:
            message += f" (the version is a {type(version).__name__} here: write "
            message += "the number, unquoted)"
        problems.add(document.location("version"), "", message)
        return False
    return True


def _merge_environment(
    earlier: EnvironmentDefinition | None, later: EnvironmentDefinition
) -> EnvironmentDefinition:
    if earlier is None or earlier.alias is not None or later.alias is not None:
        return later
    groups = dict(earlier.groups)
    for group, entries in later.groups.items():
        if group == "plugins":
            entries = groups.get("plugins", ()) + entries
        groups[group] = entries
    return EnvironmentDefinition(later.name, later.location, groups=groups)


def _apply(document: YamlDocument, site: SiteDefinitions, problems: Problems) -> None:
    site.blocks.update(_parse_blocks(document, problems))
    for name, environment in _parse_environments(document, problems).items():
        site.environments[name] = _merge_environment(
            site.environments.get(name), environment
        )


def _include_file(
    entry: str,
    location: Location,
    chain: tuple[Path, ...],
    site: SiteDefinitions,
    problems: Problems,
) -> None:
    path = (chain[-1].parent / Path(entry).expanduser()).resolve()
    if path in chain:
        cycle = " -> ".join(str(file) for file in (*chain, path))
        message = (
            f"includes {entry!r}, which closes a cycle: {cycle}; remove one of "
            "these includes"
        )
        problems.add(location, "`include`", message)
        return
    try:
        document = read_yaml_file(path)
    except OSError as exc:
        message = f"the included file {entry!r} ({path}) {read_failure(exc)}"
        problems.add(location, "`include`", message)
        return
    except YamlSyntaxError as exc:
        problems.add(exc.location, "", exc.problem)
        return
    _read_document(document, (*chain, path), site, problems)


def _read_document(
    document: YamlDocument,
    chain: tuple[Path, ...],
    site: SiteDefinitions,
    problems: Problems,
) -> None:
    logger.debug("reading site file %s", document.file)
    site.files.append(document.file)
    if not _check_version(document, problems):
        return
    _apply(document, site, problems)
    for entry, location in _includes(document, problems):
        _include_file(entry, location, chain, site, problems)


def read_site_file(document: YamlDocument, problems: Problems) -> SiteDefinitions:
    """Everything `document` and (depth first) its includes define, overridden."""
    site = SiteDefinitions()
    _read_document(document, (document.file,), site, problems)
    return site
