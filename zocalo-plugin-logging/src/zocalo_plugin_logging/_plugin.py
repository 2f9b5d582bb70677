"""Hook implementations that zocalo-plugin-logging registers with Zocalo.

Two configuration plugins: `logging`, Python's dictConfig schema plus a `verbose` list
of definitions applied as `-v` is repeated, and the legacy `graylog`, which adds one
GELF handler to the root logger.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zocalo_core import ConfigKey, ConfigPlugin, ConfigurationError, hookimpl

from zocalo_plugin_logging._dictconfig import (
    apply_definition,
    check_definition,
    secret_values,
)
from zocalo_plugin_logging._graylog import GraylogTCPHandler, GraylogUDPHandler
from zocalo_plugin_logging._verbosity import LoggingVerbosity

logger = logging.getLogger(__name__)

LOGGING_SOURCE = "the `logging` block"
GRAYLOG_SOURCE = "the `graylog` block"

#: Defaults that differ from dictConfig's own: a site file should not silence the
#: loggers that libraries created before it was read.
LOGGING_DEFAULTS: Mapping[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "incremental": False,
}

_GRAYLOG_HANDLERS: Mapping[str, Callable[..., logging.Handler]] = {
    "UDP": GraylogUDPHandler,
    "TCP": GraylogTCPHandler,
}


def activate_logging(block: Mapping[str, Any], site: Any) -> LoggingVerbosity:
    """Apply a `logging` block; return the object that raises its verbosity.

    The block is checked in full, its `verbose` levels included, before Python's
    logging is touched, and is never changed.
    """
    definition = copy.deepcopy(dict(block))
    for key, value in LOGGING_DEFAULTS.items():
        definition.setdefault(key, value)
    verbose = definition.pop("verbose", None)
    check_definition(definition, LOGGING_SOURCE)
    verbosity = LoggingVerbosity(
        () if verbose is None else verbose,
        version=definition["version"],
        source=LOGGING_SOURCE,
    )
    apply_definition(definition, LOGGING_SOURCE, secret_values(definition))
    logger.debug(
        "applied %s with %d verbosity levels", LOGGING_SOURCE, verbosity.max_verbosity
    )
    return verbosity


def activate_graylog(block: Mapping[str, Any], site: Any) -> logging.Handler:
    """Add a GELF handler for a `graylog` block to the root logger and return it."""
    protocol = block.get("protocol")
    protocol_name = protocol.upper() if isinstance(protocol, str) else ""
    handler_class = _GRAYLOG_HANDLERS.get(protocol_name)
    if handler_class is None:
        message = f"{GRAYLOG_SOURCE}: `protocol` is {protocol!r}; use UDP or TCP"
        raise ConfigurationError(message)
    logger.warning(
        "%s is deprecated: use a `logging` block with a handler made by "
        "zocalo_plugin_logging.Graylog%sHandler instead",
        GRAYLOG_SOURCE,
        protocol_name,
    )
    host: Any = block.get("host")
    port: Any = block.get("port")
    try:
        handler = handler_class(host=host, port=port)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{GRAYLOG_SOURCE}: {exc}") from exc
    logging.getLogger().addHandler(handler)
    return handler


LOGGING_PLUGIN = ConfigPlugin(
    name="logging",
    activate=activate_logging,
    summary="Python dictConfig logging setup, plus `verbose` levels for -v",
    keys=(
        ConfigKey("version", (int,), summary="dictConfig schema version, always 1"),
        ConfigKey("incremental", (bool,), summary="only change existing levels"),
        ConfigKey("disable_existing_loggers", (bool,), summary="default false"),
        ConfigKey("formatters", (dict,), summary="formatters by name"),
        ConfigKey("filters", (dict,), summary="filters by name"),
        ConfigKey("handlers", (dict,), summary="handlers by name"),
        ConfigKey("loggers", (dict,), summary="loggers by name"),
        ConfigKey("root", (dict,), summary="the root logger"),
        ConfigKey("verbose", (list,), summary="definitions applied by -v, -vv, ..."),
    ),
    open_keys=True,
)

GRAYLOG_PLUGIN = ConfigPlugin(
    name="graylog",
    activate=activate_graylog,
    summary="Deprecated: send all logs to Graylog; use a `logging` block instead",
    keys=(
        ConfigKey("protocol", (str,), required=True, summary="UDP or TCP"),
        ConfigKey("host", (str,), required=True, summary="Graylog server host name"),
        ConfigKey("port", (int,), required=True, summary="GELF input port"),
    ),
)


@hookimpl
def zocalo_config_plugins() -> Sequence[ConfigPlugin]:
    return [LOGGING_PLUGIN, GRAYLOG_PLUGIN]
