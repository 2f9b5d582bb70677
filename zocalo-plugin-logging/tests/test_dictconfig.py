"""Checks made on a dictConfig definition before Python's logging sees it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from zocalo_core import ConfigurationError
from zocalo_plugin_logging._dictconfig import check_definition, secret_values
from zocalo_plugin_logging._plugin import LOGGING_PLUGIN

WHAT = "the `logging` block"


def full(**sections: Any) -> dict[str, Any]:
    return {"version": 1, "incremental": False, **sections}


NULL_HANDLER = {"class": "logging.NullHandler"}


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        (
            full(root={"handlers": ["missing"]}),
            "`root.handlers` names handler 'missing'",
        ),
        (
            full(loggers={"a": {"filters": ["f"]}}),
            "`loggers.a.filters` names filter 'f'",
        ),
        (
            full(handlers={"h": {**NULL_HANDLER, "formatter": "plain"}}),
            "`handlers.h.formatter` names formatter 'plain'",
        ),
        (
            full(handlers={"h": {**NULL_HANDLER, "filters": ["f"]}}),
            "`handlers.h.filters` names filter 'f'",
        ),
        (full(root={"handlers": "console"}), "must be a list of handler names"),
        (full(handlers={"h": {"level": "DEBUG"}}), "neither `class` nor `()`"),
        (full(handlers={"h": "console"}), "handler 'h' must be a mapping"),
        (full(handlers=["console"]), "`handlers` must be a mapping"),
        (full(root=["console"]), "`root` must be a mapping"),
        (full(loggers={"a": "DEBUG"}), "logger 'a' must be a mapping"),
        (full(loggers={"a": {"level": "debug"}}), "`loggers.a.level` is 'debug'"),
        (full(handlers={"h": {**NULL_HANDLER, "level": 5.0}}), "`handlers.h.level`"),
        ({"version": 2}, "`version` is 2"),
        ({"version": 1, "incremental": "yes"}, "`incremental` must be true or false"),
    ],
)
def test_problems_are_found_before_dictconfig(
    definition: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_definition(definition, WHAT)

    assert str(info.value).startswith(f"{WHAT}: ")
    assert problem in str(info.value)


def test_a_sound_definition_passes() -> None:
    definition = full(
        formatters={"plain": {"format": "%(message)s"}},
        filters={"f": {"()": "zocalo_plugin_logging.DowngradeFilter"}},
        handlers={"h": {**NULL_HANDLER, "formatter": "plain", "filters": ["f"]}},
        loggers={"a": {"level": 15, "handlers": ["h"], "filters": ["f"]}},
        root={"level": "WARNING", "handlers": ["h"]},
    )

    check_definition(definition, WHAT)


def test_keys_dictconfig_ignores_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check_definition(full(loger={"a": {}}), WHAT)

    assert "does not read, check their spelling: loger" in caplog.text


def test_undefined_handler_leaves_root_alone() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    definition = full(
        handlers={"null": NULL_HANDLER}, root={"level": 1, "handlers": ["nul"]}
    )

    with pytest.raises(ConfigurationError, match="handler 'nul'"):
        LOGGING_PLUGIN.activate(definition, None)

    assert (root.handlers, root.level) == (handlers, level)


def test_secret_values_found_at_any_depth() -> None:
    definition = {
        "handlers": {
            "mail": {"Password": "p1", "credentials": [{"api_token": "t1"}]},
            "other": {"secret_key": "", "user": "not-secret"},
        }
    }

    assert secret_values(definition) == {"p1", "t1"}
