"""The `logging` and `graylog` config plugins: registration and activation."""

from __future__ import annotations

import copy
import logging
from importlib import metadata
from typing import Any

import pluggy
import pytest
from zocalo_core import ConfigPlugin, ConfigurationError, hookspecs
from zocalo_core._plugins import PluginRegistry
from zocalo_plugin_logging import (
    GraylogTCPHandler,
    GraylogUDPHandler,
    LoggingVerbosity,
    _plugin,
)

KEPT = "zocalo_logging_tests.kept"
CONFIGURED = "zocalo_logging_tests.configured"


def logging_plugin() -> ConfigPlugin:
    return _plugin.LOGGING_PLUGIN


def graylog_plugin() -> ConfigPlugin:
    return _plugin.GRAYLOG_PLUGIN


def only_this_plugin() -> PluginRegistry:
    # NOTE: zocalo_core._plugins.build_plugin_manager also registers the core's
    # built-ins, which need modules other engineers are still writing; a manager
    # holding the specs and this plugin alone tests the same registration path.
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_plugin)
    manager.check_pending()
    return PluginRegistry(manager)


def test_registry_finds_both_config_plugins() -> None:
    registry = only_this_plugin()

    assert registry.get("config plugin", "logging") is _plugin.LOGGING_PLUGIN
    assert registry.get("config plugin", "graylog") is _plugin.GRAYLOG_PLUGIN
    assert logging_plugin().open_keys
    required = {key.name for key in graylog_plugin().keys if key.required}
    assert required == {"protocol", "host", "port"}


def test_entry_point_names_the_plugin_module() -> None:
    entry_points = metadata.entry_points(group="zocalo")
    ours = [point for point in entry_points if point.name == "zocalo_plugin_logging"]

    assert [point.value for point in ours] == ["zocalo_plugin_logging._plugin"]


def test_activate_returns_verbosity_and_never_changes_the_block() -> None:
    block: dict[str, Any] = {
        "handlers": {"null": {"class": "logging.NullHandler", "level": "DEBUG"}},
        "loggers": {CONFIGURED: {"level": "INFO", "handlers": ["null"]}},
        "verbose": [{"loggers": {CONFIGURED: {"level": "DEBUG"}}}],
    }
    original = copy.deepcopy(block)

    verbosity = logging_plugin().activate(block, None)
    verbosity.verbosity = 1

    assert block == original
    assert isinstance(verbosity, LoggingVerbosity)
    assert logging.getLogger(CONFIGURED).level == logging.DEBUG
    assert [type(h) for h in logging.getLogger(CONFIGURED).handlers] == [
        logging.NullHandler
    ]


def test_existing_loggers_stay_enabled_by_default() -> None:
    kept = logging.getLogger(KEPT)
    block = {"loggers": {CONFIGURED: {"level": "INFO"}}}

    logging_plugin().activate(block, None)

    assert not kept.disabled


def test_existing_loggers_can_still_be_disabled() -> None:
    kept = logging.getLogger(KEPT)
    block = {"disable_existing_loggers": True, "loggers": {CONFIGURED: {}}}

    logging_plugin().activate(block, None)

    assert kept.disabled


@pytest.mark.parametrize(
    "block",
    [
        {"incremental": True, "handlers": {"h": {"class": "logging.NullHandler"}}},
        {"incremental": True, "formatters": {"f": {"format": "%(message)s"}}},
        {"incremental": True, "root": {"level": "DEBUG", "handlers": ["h"]}},
        {"incremental": True, "loggers": {KEPT: {"filters": ["f"]}}},
    ],
)
def test_incremental_block_that_builds_objects_changes_nothing(
    block: dict[str, Any],
) -> None:
    kept = logging.getLogger(KEPT)
    kept.setLevel(logging.WARNING)
    root_handlers = list(logging.getLogger().handlers)
    block = {**block, "loggers": {KEPT: {"level": "DEBUG"}, **block.get("loggers", {})}}

    with pytest.raises(
        ConfigurationError, match=r"cannot be in an incremental definition"
    ):
        logging_plugin().activate(block, None)

    assert kept.level == logging.WARNING
    assert logging.getLogger().handlers == root_handlers


def test_bad_verbose_level_is_found_before_the_block_is_applied() -> None:
    kept = logging.getLogger(KEPT)
    handler = logging.NullHandler()
    kept.addHandler(handler)
    block = {
        "handlers": {"null": {"class": "logging.NullHandler"}},
        "loggers": {KEPT: {"level": "DEBUG", "handlers": ["null"]}},
        "verbose": [
            {"loggers": {KEPT: {"level": "INFO"}}},
            {"handlers": {"null": {"level": "DEBUG"}}},
        ],
    }

    with pytest.raises(ConfigurationError, match=r"verbosity level 2 of the `logging`"):
        logging_plugin().activate(block, None)

    assert kept.handlers == [handler]
    assert kept.level == logging.NOTSET


def test_verbose_entry_that_is_not_a_mapping_names_its_level() -> None:
    block = {"verbose": [{"root": {"level": "INFO"}}, ["DEBUG"]]}

    with pytest.raises(ConfigurationError, match=r"verbosity level 2 .* not a mapping"):
        logging_plugin().activate(block, None)


def test_dictconfig_failure_is_a_configuration_error_naming_the_block() -> None:
    block = {"handlers": {"broken": {"class": "zocalo_no_such_module.Handler"}}}

    with pytest.raises(ConfigurationError) as info:
        logging_plugin().activate(block, None)

    message = str(info.value)
    assert message.startswith("the `logging` block was rejected by Python's logging")
    assert "handler 'broken'" in message
    assert "zocalo_no_such_module" in message


def test_secrets_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    def refusing_handler(**settings: Any) -> logging.Handler:
        raise ValueError(f"cannot log in with {settings['password']}")

    block = {
        "handlers": {
            "remote": {"()": refusing_handler, "password": "hunter2", "token": "abc1"}
        },
        "loggers": {CONFIGURED: {"handlers": ["remote"]}},
    }
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ConfigurationError) as info:
        logging_plugin().activate(block, None)

    assert "cannot log in with ***" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in caplog.text
    assert "abc1" not in caplog.text


def test_graylog_handler_from_a_logging_block(udp_listener: Any) -> None:
    block = {
        "handlers": {
            "graylog": {
                "()": "zocalo_plugin_logging.GraylogUDPHandler",
                "host": "127.0.0.1",
                "port": udp_listener.port,
                "filters": ["downgrade"],
            }
        },
        "filters": {"downgrade": {"()": "zocalo_plugin_logging.DowngradeFilter"}},
        "loggers": {CONFIGURED: {"level": "INFO", "handlers": ["graylog"]}},
    }
    logging_plugin().activate(block, None)

    logging.getLogger(CONFIGURED).error("failed", extra={"service": "Runner"})
    gelf = udp_listener.receive()

    assert (gelf["level"], gelf["level_name"]) == (4, "WARNING")
    assert gelf["_service"] == "Runner"


@pytest.mark.parametrize(
    ("protocol", "handler_class"),
    [
        ("UDP", GraylogUDPHandler),
        ("udp", GraylogUDPHandler),
        ("Tcp", GraylogTCPHandler),
    ],
)
def test_graylog_block_adds_one_root_handler(
    protocol: str, handler_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    block = {"protocol": protocol, "host": "127.0.0.1", "port": 12201}

    handler: logging.Handler = graylog_plugin().activate(block, None)

    assert isinstance(handler, handler_class)
    assert root.handlers == [*before, handler]
    root.removeHandler(handler)
    handler.close()
    assert "the `graylog` block is deprecated" in caplog.text
    assert any(record.levelno == logging.WARNING for record in caplog.records)


def test_graylog_block_sends_root_records(udp_listener: Any) -> None:
    root = logging.getLogger()
    block = {"protocol": "UDP", "host": "127.0.0.1", "port": udp_listener.port}
    handler = graylog_plugin().activate(block, None)
    try:
        logging.getLogger(CONFIGURED).warning("via root", extra={"recipe_ID": "r1"})
        gelf = udp_listener.receive()
    finally:
        root.removeHandler(handler)
        handler.close()

    assert gelf["short_message"] == "via root"
    assert gelf["_recipe_ID"] == "r1"


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"protocol": "HTTP", "host": "h", "port": 1}, "`protocol` is 'HTTP'"),
        ({"host": "h", "port": 1}, "`protocol` is None"),
        ({"protocol": "UDP", "host": "h", "port": "x"}, "port is 'x'"),
        ({"protocol": "UDP", "port": 1}, "host is None"),
    ],
)
def test_bad_graylog_block_adds_no_handler(block: dict[str, Any], problem: str) -> None:
    root_handlers = list(logging.getLogger().handlers)

    with pytest.raises(ConfigurationError, match=f"the `graylog` block: .*{problem}"):
        graylog_plugin().activate(block, None)

    assert logging.getLogger().handlers == root_handlers
