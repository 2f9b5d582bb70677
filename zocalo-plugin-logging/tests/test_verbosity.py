"""LoggingVerbosity: levels applied in order, never going down."""

from __future__ import annotations

import logging

import pytest
from zocalo_core import ConfigurationError
from zocalo_plugin_logging import LoggingVerbosity

WATCHED = "zocalo_logging_tests.verbosity"
OTHER = "zocalo_logging_tests.verbosity_other"


def three_levels() -> list[dict[str, object]]:
    return [
        {"loggers": {WATCHED: {"level": "INFO"}}},
        {"loggers": {WATCHED: {"level": "DEBUG"}, OTHER: {"level": "INFO"}}},
        {"loggers": {OTHER: {"level": "DEBUG"}}},
    ]


@pytest.fixture(autouse=True)
def quiet_watched_loggers() -> None:
    logging.getLogger(WATCHED).setLevel(logging.WARNING)
    logging.getLogger(OTHER).setLevel(logging.WARNING)


def test_starts_at_zero_and_changes_nothing() -> None:
    verbosity = LoggingVerbosity(three_levels())

    assert verbosity.verbosity == 0
    assert verbosity.max_verbosity == 3
    assert logging.getLogger(WATCHED).level == logging.WARNING
    assert repr(verbosity) == "<LoggingVerbosity verbosity=0>"


def test_raising_to_two_applies_levels_one_and_two_in_order() -> None:
    verbosity = LoggingVerbosity(three_levels())

    verbosity.verbosity = 2

    assert verbosity.verbosity == 2
    # Level 2 ran after level 1: its DEBUG replaced level 1's INFO.
    assert logging.getLogger(WATCHED).level == logging.DEBUG
    assert logging.getLogger(OTHER).level == logging.INFO
    assert repr(verbosity) == "<LoggingVerbosity verbosity=2>"


def test_each_step_applies_only_the_levels_not_yet_applied() -> None:
    verbosity = LoggingVerbosity(three_levels())
    verbosity.verbosity = 1
    logging.getLogger(WATCHED).setLevel(logging.ERROR)

    verbosity.verbosity = 3

    # Level 1 was not applied again, so WATCHED keeps what level 2 set.
    assert logging.getLogger(WATCHED).level == logging.DEBUG
    assert logging.getLogger(OTHER).level == logging.DEBUG


def test_lower_or_equal_values_are_ignored() -> None:
    verbosity = LoggingVerbosity(three_levels())
    verbosity.verbosity = 2
    logging.getLogger(WATCHED).setLevel(logging.ERROR)

    verbosity.verbosity = 1
    verbosity.verbosity = 2
    verbosity.verbosity = -1

    assert verbosity.verbosity == 2
    assert logging.getLogger(WATCHED).level == logging.ERROR


def test_values_past_the_last_level_stop_at_the_end() -> None:
    verbosity = LoggingVerbosity(three_levels())

    verbosity.verbosity = 10

    assert verbosity.verbosity == 3
    assert logging.getLogger(OTHER).level == logging.DEBUG


def test_levels_are_incremental_by_default_so_handlers_stay() -> None:
    handler = logging.NullHandler()
    logging.getLogger(WATCHED).addHandler(handler)
    verbosity = LoggingVerbosity([{"loggers": {WATCHED: {"level": "DEBUG"}}}])

    verbosity.verbosity = 1

    assert logging.getLogger(WATCHED).handlers == [handler]


def test_a_level_that_is_not_a_mapping_names_its_number() -> None:
    with pytest.raises(ConfigurationError, match=r"verbosity level 2 .* not a mapping"):
        LoggingVerbosity([{"root": {"level": "INFO"}}, "DEBUG"])  # type: ignore[list-item]


@pytest.mark.parametrize("section", ["handlers", "filters", "formatters"])
def test_an_incremental_level_may_not_build_objects(section: str) -> None:
    level = {section: {"console": {"class": "logging.StreamHandler"}}}

    with pytest.raises(ConfigurationError, match=f"verbosity level 1 .*`{section}`"):
        LoggingVerbosity([level])


def test_an_incremental_level_may_not_give_a_logger_handlers() -> None:
    level = {"loggers": {WATCHED: {"level": "DEBUG", "handlers": ["console"]}}}

    with pytest.raises(ConfigurationError, match=f"loggers.{WATCHED}"):
        LoggingVerbosity([level])


def test_a_level_that_is_not_incremental_may_define_handlers() -> None:
    level = {
        "incremental": False,
        "disable_existing_loggers": False,
        "handlers": {"null": {"class": "logging.NullHandler"}},
        "loggers": {WATCHED: {"level": "DEBUG", "handlers": ["null"]}},
    }
    verbosity = LoggingVerbosity([level])

    verbosity.verbosity = 1

    handlers = logging.getLogger(WATCHED).handlers
    assert [type(handler) for handler in handlers] == [logging.NullHandler]


def test_a_bad_level_name_is_caught_when_the_object_is_made() -> None:
    with pytest.raises(ConfigurationError, match=r"`root.level` is 'LOUD'"):
        LoggingVerbosity([{"root": {"level": "LOUD"}}])


def test_the_levels_given_are_not_changed() -> None:
    levels = three_levels()

    LoggingVerbosity(levels).verbosity = 3

    assert levels == three_levels()


def test_verbose_must_be_a_list() -> None:
    with pytest.raises(ConfigurationError, match=r"`verbose` must be a list"):
        LoggingVerbosity({"loggers": {}})  # type: ignore[arg-type]
