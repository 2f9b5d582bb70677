"""Checking and applying Python dictConfig definitions given in site files.

A full (non-incremental) dictConfig first closes every existing handler and only then
builds the new ones, so a definition that fails half way leaves a process without its
logging. Everything that can be checked without building objects is therefore checked
here first: the shape of each section, levels, and the names that one part of the
definition uses to refer to another.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator, Mapping
from typing import Any

from zocalo_core import ConfigurationError

from zocalo_plugin_logging._levels import require_level

logger = logging.getLogger(__name__)

#: The parts of a definition that build objects, which an incremental one cannot do.
BUILDING_SECTIONS = ("formatters", "filters", "handlers")

#: The top-level keys that Python's dictConfig reads.
DICTCONFIG_KEYS = frozenset(
    {"version", "incremental", "disable_existing_loggers", "root", "loggers"}
    | set(BUILDING_SECTIONS)
)

#: Words that mark a key's value as a secret, to be kept out of error messages.
_SECRET_WORDS = ("password", "token", "secret")

#: How deep into a chain of exceptions an error message looks for the reason.
_MAX_CHAINED_REASONS = 5


def _mapping_section(definition: Mapping[str, Any], key: str, what: str) -> Any:
    section = definition.get(key) or {}
    if not isinstance(section, Mapping):
        message = f"{what}: `{key}` must be a mapping, not {type(section).__name__}"
        raise ConfigurationError(message)
    return section


def _check_flags(definition: Mapping[str, Any], what: str) -> None:
    version = definition.get("version")
    if version != 1 or isinstance(version, bool):
        message = (
            f"{what}: `version` is {version!r}, but Python's logging only reads "
            "version 1; set `version: 1` or leave it out"
        )
        raise ConfigurationError(message)
    for flag in ("incremental", "disable_existing_loggers"):
        if flag in definition and not isinstance(definition[flag], bool):
            value = definition[flag]
            message = f"{what}: `{flag}` must be true or false, not {value!r}"
            raise ConfigurationError(message)


def _logger_definitions(
    definition: Mapping[str, Any], what: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each logger definition, root first, with the path that names it in messages."""
    root = definition.get("root")
    if root is not None:
        if not isinstance(root, Mapping):
            message = f"{what}: `root` must be a mapping, not {type(root).__name__}"
            raise ConfigurationError(message)
        yield "root", root
    loggers = _mapping_section(definition, "loggers", what)
    for name, logger_definition in loggers.items():
        if not isinstance(logger_definition, Mapping):
            message = (
                f"{what}: logger {name!r} must be a mapping of its settings, not "
                f"{type(logger_definition).__name__}"
            )
            raise ConfigurationError(message)
        yield f"loggers.{name}", logger_definition


def check_incremental(definition: Mapping[str, Any], what: str) -> None:
    """Reject sections an incremental definition may not hold, at any depth."""
    places: list[tuple[str, Mapping[str, Any]]] = [("at the top level", definition)]
    for path, settings in _logger_definitions(definition, what):
        places.append((f"under `{path}`", settings))
    for place, settings in places:
        found = [key for key in BUILDING_SECTIONS if key in settings]
        if found:
            keys = ", ".join(f"`{key}`" for key in found)
            message = (
                f"{what}: {keys} {place} cannot be in an incremental definition, "
                "which only changes levels; remove them or set `incremental: false`"
            )
            raise ConfigurationError(message)


def _undefined(kind: str, name: str, place: str, what: str) -> ConfigurationError:
    message = (
        f"{what}: `{place}` names {kind} {name!r}, which is not defined; "
        f"define it under `{kind}s` or correct the name"
    )
    return ConfigurationError(message)


def _check_names(
    names: object, known: Mapping[str, Any], kind: str, place: str, what: str
) -> None:
    if names is None:
        return
    if not isinstance(names, list | tuple):
        message = f"{what}: `{place}` must be a list of {kind} names, not {names!r}"
        raise ConfigurationError(message)
    for name in names:
        # Objects given from Python code instead of names are dictConfig's business.
        if isinstance(name, str) and name not in known:
            raise _undefined(kind, name, place, what)


def _check_level(settings: Mapping[str, Any], place: str, what: str) -> None:
    if "level" in settings:
        require_level(settings["level"], f"{what}: `{place}.level`")


def _check_handlers(
    handlers: Mapping[str, Any], sections: Mapping[str, Any], what: str
) -> None:
    for name, handler in handlers.items():
        place = f"handlers.{name}"
        if not isinstance(handler, Mapping):
            message = f"{what}: handler {name!r} must be a mapping of its settings"
            raise ConfigurationError(message)
        if "class" not in handler and "()" not in handler:
            message = (
                f"{what}: handler {name!r} has neither `class` nor `()`; name the "
                "handler class, e.g. `class: logging.StreamHandler`"
            )
            raise ConfigurationError(message)
        _check_level(handler, place, what)
        formatter = handler.get("formatter")
        if isinstance(formatter, str) and formatter not in sections["formatters"]:
            raise _undefined("formatter", formatter, f"{place}.formatter", what)
        filters = handler.get("filters")
        _check_names(filters, sections["filters"], "filter", f"{place}.filters", what)


def check_definition(definition: Mapping[str, Any], what: str) -> None:
    """Check a complete dictConfig definition (defaults filled in) before it is used."""
    _check_flags(definition, what)
    unread = sorted(set(definition) - DICTCONFIG_KEYS)
    if unread:
        logger.warning(
            "%s has keys that Python's logging does not read, check their spelling: %s",
            what,
            ", ".join(unread),
        )
    if definition.get("incremental"):
        check_incremental(definition, what)
    sections = {
        key: _mapping_section(definition, key, what) for key in BUILDING_SECTIONS
    }
    _check_handlers(sections["handlers"], sections, what)
    for place, settings in _logger_definitions(definition, what):
        _check_level(settings, place, what)
        for kind in ("handler", "filter"):
            known = sections[f"{kind}s"]
            _check_names(
                settings.get(f"{kind}s"), known, kind, f"{place}.{kind}s", what
            )


def secret_values(value: object) -> set[str]:
    """Every string held, at any depth, under a key that names a secret."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            secret_key = isinstance(key, str) and any(
                word in key.lower() for word in _SECRET_WORDS
            )
            if secret_key and isinstance(item, str) and item:
                found.add(item)
            found |= secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= secret_values(item)
    return found


def _error_chain(exc: BaseException) -> str:
    # dictConfig's own message only names the part that failed; the reason is in
    # the exceptions it chained.
    parts: list[str] = []
    current: BaseException | None = exc
    for _ in range(_MAX_CHAINED_REASONS):
        if current is None:
            break
        text = str(current) or type(current).__name__
        # A wrapping error often repeats the text of the one it wraps.
        if not any(text in part for part in parts):
            parts.append(text)
        current = current.__cause__ or current.__context__
    return ": ".join(parts)


def apply_definition(
    definition: Mapping[str, Any], what: str, secrets: set[str]
) -> None:
    """Run dictConfig on a checked definition; errors name `what`, secrets masked."""
    try:
        logging.config.dictConfig(dict(definition))
    except Exception as exc:
        reason = _error_chain(exc)
        for secret in secrets:
            reason = reason.replace(secret, "***")
        message = (
            f"{what} was rejected by Python's logging: {reason}; logging may be "
            "left partly reconfigured"
        )
        raise ConfigurationError(message) from exc
