"""Reading logging levels given by name or number, and their syslog equivalents."""

from __future__ import annotations

import logging

from zocalo_core import ConfigurationError

#: Upper bounds (exclusive) of Python levels and the syslog severity below each bound.
#: Python's gaps between standard levels are filled so custom levels map sensibly:
#: 25 is between INFO and WARNING, which is syslog's NOTICE.
_SYSLOG_SEVERITY_BELOW: tuple[tuple[int, int], ...] = (
    (logging.INFO, 7),  # DEBUG
    (logging.INFO + 5, 6),  # INFO
    (logging.WARNING, 5),  # NOTICE
    (logging.ERROR, 4),  # WARNING
    (logging.CRITICAL, 3),  # ERROR
    (logging.CRITICAL + 10, 2),  # CRITICAL
)

#: Syslog's ALERT, for every Python level from 60 upwards.
_SYSLOG_ALERT = 1


def syslog_severity(levelno: int) -> int:
    """The syslog severity (0 most severe, 7 debug) of a Python logging level."""
    for bound, severity in _SYSLOG_SEVERITY_BELOW:
        if levelno < bound:
            return severity
    return _SYSLOG_ALERT


def known_level_names() -> list[str]:
    """The names of the levels registered with Python's logging, lowest first."""
    names = {
        logging.getLevelName(number): number
        for number in range(0, 101)
        if not logging.getLevelName(number).startswith("Level ")
    }
    return sorted(names, key=names.__getitem__)


def level_number(level: object) -> int | None:
    """The number of a level given as an int or a registered name, else None.

    Names are matched as Python's logging matches them, so `"DEBUG"` but not
    `"debug"`; a bool is not a level even though it is an int.
    """
    if isinstance(level, bool):
        return None
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        # getLevelName maps a registered name to its number, anything else to a str.
        number = logging.getLevelName(level)
        if isinstance(number, int):
            return number
    return None


def level_name(levelno: int) -> str:
    """The registered name of a level number, or the number itself as text."""
    name = logging.getLevelName(levelno)
    return name if not name.startswith("Level ") else str(levelno)


class LevelError(ConfigurationError, ValueError):
    """A logging level is unknown, or two levels are in the wrong order.

    It is a `ValueError` too, as Python's own level checks raise, so code written for
    either kind of error catches it.
    """


def require_level(level: object, what: str) -> int:
    """The number of `level`, or a `LevelError` saying which setting was wrong."""
    number = level_number(level)
    if number is None:
        names = ", ".join(known_level_names())
        message = (
            f"{what} is {level!r}, which is not a logging level; use a number or one "
            f"of {names} (names are upper case)"
        )
        raise LevelError(message)
    return number
