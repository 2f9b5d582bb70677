"""Level names and numbers, and their syslog severities."""

from __future__ import annotations

import logging

import pytest
from zocalo_core import ConfigurationError
from zocalo_plugin_logging._levels import level_number, require_level, syslog_severity


@pytest.mark.parametrize(
    ("levelno", "severity"),
    [
        (1, 7),
        (logging.DEBUG, 7),
        (19, 7),
        (logging.INFO, 6),
        (24, 6),
        (25, 5),
        (29, 5),
        (logging.WARNING, 4),
        (39, 4),
        (logging.ERROR, 3),
        (49, 3),
        (logging.CRITICAL, 2),
        (59, 2),
        (60, 1),
        (100, 1),
    ],
)
def test_syslog_severity_of_every_band(levelno: int, severity: int) -> None:
    assert syslog_severity(levelno) == severity


def test_level_number_reads_names_and_numbers_but_not_bools() -> None:
    assert level_number("WARNING") == logging.WARNING
    assert level_number(15) == 15
    assert level_number("warning") is None
    assert level_number(True) is None
    assert level_number(None) is None


def test_unknown_level_is_both_a_configuration_and_a_value_error() -> None:
    with pytest.raises(ConfigurationError, match=r"handlers.x.level is 'LOUD'") as info:
        require_level("LOUD", "handlers.x.level")
    assert isinstance(info.value, ValueError)
    assert "DEBUG" in str(info.value)
