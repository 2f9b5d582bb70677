"""Plugin blocks: their shape, block files, checks against config plugins, masking.

A block is every top-level key of a site file other than the reserved ones. It is
either inline (a mapping with a `plugin` key) or the path of a YAML file holding such
a mapping, read only when an environment that uses the block is activated, so that
credentials can live in files that only some users may read.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zocalo_core._config._problems import Location, Problems, describe_value
from zocalo_core._config._yaml import (
    YamlDocument,
    YamlSyntaxError,
    read_failure,
    read_yaml_file,
)
from zocalo_core._errors import ConfigurationError
from zocalo_core._records import ConfigKey, ConfigPlugin

logger = logging.getLogger(__name__)

#: Top-level keys of a site file that are not plugin blocks.
RESERVED_KEYS = frozenset({"version", "environments", "include"})

#: What `describe()` shows in place of a secret value.
MASK = "********"

_SECRET_WORDS = ("password", "passwd", "secret", "token")
_MAX_MASK_DEPTH = 32


@dataclass(frozen=True)
class BlockDefinition:
    """A block as written in a site file: a mapping, or a block file's path."""

    name: str
    value: Any
    document: YamlDocument

    @property
    def declared_at(self) -> Location:
        return self.document.location(self.name)

    @property
    def block_file(self) -> Path | None:
        """The block file this block refers to, or None for an inline block."""
        if not isinstance(self.value, str):
            return None
        relative_to = self.document.file.parent
        return (relative_to / Path(self.value).expanduser()).resolve()


@dataclass(frozen=True)
class ResolvedBlock:
    """A block whose settings are known: inline, or read from its block file.

    `settings` excludes the `plugin` key; hand out copies only, so that a plugin that
    changes what it was given cannot change the site configuration.
    """

    name: str
    plugin: str
    settings: Mapping[str, Any]
    location: Location
    key_locations: Mapping[str, Location]
    subject: str

    def copy_settings(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.settings))


def check_definition(definition: BlockDefinition, problems: Problems) -> None:
    """Report a block whose value is neither a mapping nor a non-empty path."""
    value = definition.value
    if isinstance(value, Mapping) or (isinstance(value, str) and value.strip()):
        return
    shape = "an empty path" if isinstance(value, str) else describe_value(value)
    problems.add(
        definition.declared_at,
        f"block {definition.name!r}",
        f"is {shape}; a block is a mapping with a `plugin` key, or the path of a "
        "YAML file holding one",
    )


def build_block(
    name: str,
    data: Any,
    document: YamlDocument,
    prefix: tuple[str, ...],
    subject: str,
    problems: Problems,
) -> ResolvedBlock | None:
    """Check the shape of a block's mapping and split off its `plugin` key."""
    location = document.location(*prefix) if prefix else Location(document.file)
    if not isinstance(data, Mapping):
        found = describe_value(data)
        message = f"is {found}; it must be a mapping with a `plugin` key"
        problems.add(location, subject, message)
        return None
    odd_keys = [key for key in data if not isinstance(key, str)]
    if odd_keys:
        message = f"has keys that are not strings: {odd_keys!r}; quote them"
        problems.add(location, subject, message)
        return None
    plugin = data.get("plugin")
    if not isinstance(plugin, str) or not plugin.strip():
        message = (
            "has no `plugin` key; add `plugin: <name>` naming the configuration "
            "plugin that reads this block"
        )
        problems.add(location, subject, message)
        return None
    settings = {key: copy.deepcopy(value) for key, value in data.items()}
    del settings["plugin"]
    key_locations = {key: document.location(*prefix, key) for key in settings}
    return ResolvedBlock(name, plugin, settings, location, key_locations, subject)


def inline_block(
    definition: BlockDefinition, problems: Problems
) -> ResolvedBlock | None:
    subject = f"block {definition.name!r}"
    prefix = (definition.name,)
    document = definition.document
    return build_block(
        definition.name, definition.value, document, prefix, subject, problems
    )


def read_block_file(
    definition: BlockDefinition, problems: Problems
) -> ResolvedBlock | None:
    """Read the block file of `definition`; problems name the block and both files."""
    block_file = definition.block_file
    assert block_file is not None
    subject = f"block {definition.name!r} (declared in {definition.declared_at})"
    try:
        document = read_yaml_file(block_file)
    except OSError as exc:
        message = f"its block file {block_file} {read_failure(exc)}"
        problems.add(definition.declared_at, f"block {definition.name!r}", message)
        return None
    except YamlSyntaxError as exc:
        problems.add(exc.location, subject, exc.problem)
        return None
    return build_block(definition.name, document.data, document, (), subject, problems)


def _type_problem(key: ConfigKey, value: Any) -> str | None:
    if not key.types or object in key.types:
        return None
    expected = " or ".join(kind.__name__ for kind in key.types)
    # YAML's `true` is a bool, and bool is an int to isinstance: not a port number.
    wrong_bool = isinstance(value, bool) and bool not in key.types
    if isinstance(value, key.types) and not wrong_bool:
        return None
    if value is None:
        return f"key {key.name!r} has no value; give it a value of type {expected}"
    found = type(value).__name__
    return f"key {key.name!r} must be of type {expected}, not {found}"


def validate_block(
    block: ResolvedBlock, record: ConfigPlugin | None, problems: Problems
) -> None:
    """Check `block` against its plugin's keys; an unknown plugin only warns."""
    if record is None:
        logger.warning(
            "%s: %s: configuration plugin %r is not installed; the block is skipped",
            block.location,
            block.subject,
            block.plugin,
        )
        return
    subject = f"{block.subject} (plugin {block.plugin!r})"
    declared = {key.name: key for key in record.keys}
    found_before = len(problems.messages)
    for key in record.keys:
        if key.name not in block.settings:
            if key.required:
                hint = f" ({key.summary})" if key.summary else ""
                message = f"required key {key.name!r}{hint} is missing; add it"
                problems.add(block.location, subject, message)
            continue
        problem = _type_problem(key, block.settings[key.name])
        if problem is not None:
            problems.add(block.key_locations[key.name], subject, problem)
    if record.check is not None and len(problems.messages) == found_before:
        try:
            record.check(block.copy_settings())
        except ConfigurationError as exc:
            problems.add(_named_key_location(block, str(exc)), subject, str(exc))
    if record.open_keys:
        return
    for name in block.settings:
        if name not in declared:
            logger.warning(
                "%s: %s: key %r is not a setting of this plugin (it knows: %s); "
                "check its spelling",
                block.key_locations[name],
                subject,
                name,
                ", ".join(sorted(declared)) or "no keys",
            )


def _named_key_location(block: ResolvedBlock, problem: str) -> Location:
    """Where the first key that `problem` names as `key` is, else the block."""
    for name in block.settings:
        if f"`{name}`" in problem:
            return block.key_locations[name]
    return block.location


def looks_secret(key: str) -> bool:
    """Whether a key's name suggests that its value is a credential."""
    lowered = key.lower()
    if lowered == "key" or lowered.endswith("_key"):
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_nested(value: Any, depth: int) -> Any:
    if depth > _MAX_MASK_DEPTH:
        return "<nested too deeply to show>"
    if isinstance(value, Mapping):
        return {
            key: MASK if looks_secret(str(key)) else _mask_nested(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_nested(item, depth + 1) for item in value]
    return copy.deepcopy(value)


def mask_settings(
    settings: Mapping[str, Any], record: ConfigPlugin | None
) -> dict[str, Any]:
    """A copy of `settings` with every secret value replaced by `MASK`.

    A closed plugin's declared keys are secret when it says so; every other key, and
    every nested key, is secret when its name looks like a credential.
    """
    declared = {key.name: key for key in record.keys} if record else {}
    trust_declarations = record is not None and not record.open_keys
    masked: dict[str, Any] = {}
    for name, value in settings.items():
        spec = declared.get(name)
        if spec is not None and trust_declarations:
            secret = spec.secret
        else:
            secret = (spec is not None and spec.secret) or looks_secret(name)
        masked[name] = MASK if secret else _mask_nested(value, 1)
    return masked
