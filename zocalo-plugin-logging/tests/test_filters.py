"""DowngradeFilter: which records it lowers, and what it refuses."""

from __future__ import annotations

import logging

import pytest
from zocalo_plugin_logging import DowngradeFilter


def record_at(levelno: int) -> logging.LogRecord:
    return logging.LogRecord(
        "zocalo_logging_tests", levelno, __file__, 1, "message", None, None
    )


@pytest.mark.parametrize(
    ("levelno", "expected"),
    [
        (logging.DEBUG, logging.DEBUG),
        (logging.WARNING, logging.WARNING),
        (35, logging.WARNING),
        (logging.ERROR, logging.WARNING),
        (45, logging.WARNING),
        (logging.CRITICAL, logging.CRITICAL),
        (60, 60),
    ],
)
def test_default_band_lowers_only_above_warning_and_below_critical(
    levelno: int, expected: int
) -> None:
    record = record_at(levelno)

    assert DowngradeFilter().filter(record) is True

    assert record.levelno == expected
    assert record.levelname == logging.getLevelName(expected)


def test_levels_given_by_number_and_the_name_follows() -> None:
    downgrade = DowngradeFilter(logging.INFO, only_below=logging.ERROR)
    record = record_at(logging.WARNING)

    downgrade.filter(record)

    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")


def test_records_are_never_dropped() -> None:
    downgrade = DowngradeFilter("DEBUG", only_below=60)

    assert all(downgrade.filter(record_at(level)) for level in range(0, 70, 5))


def test_lowered_records_then_meet_the_handler_level(
    quiet_logger: logging.Logger,
) -> None:
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.levelname)  # type: ignore[method-assign]
    handler.addFilter(DowngradeFilter("WARNING", only_below="CRITICAL"))
    quiet_logger.addHandler(handler)

    quiet_logger.error("lowered")
    quiet_logger.critical("kept")

    assert seen == ["WARNING", "CRITICAL"]


@pytest.mark.parametrize(
    ("reduce_to", "only_below"),
    [("WARNING", "WARNING"), ("ERROR", "WARNING"), (30, 20)],
)
def test_only_below_must_be_above_reduce_to(
    reduce_to: str | int, only_below: str | int
) -> None:
    with pytest.raises(ValueError, match=r"only_below .* must be above reduce_to"):
        DowngradeFilter(reduce_to, only_below=only_below)


def test_unknown_level_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"reduce_to is 'LOUDER'"):
        DowngradeFilter("LOUDER")


def test_repr_names_both_levels() -> None:
    downgrade = DowngradeFilter("INFO", only_below=40)

    assert repr(downgrade) == "<DowngradeFilter reduce_to=INFO only_below=ERROR>"
