"""`DowngradeFilter`: lower the level of records within a band of levels."""

from __future__ import annotations

import logging

from zocalo_plugin_logging._levels import LevelError, level_name, require_level


class DowngradeFilter(logging.Filter):
    """Rewrite records above `reduce_to` and below `only_below` to `reduce_to`.

    A record whose level is strictly above `reduce_to` and strictly below
    `only_below` gets `reduce_to` as its level number and name; every other record
    is left alone. No record is ever dropped. Levels are names (`"WARNING"`) or
    numbers. For example, attached to a handler that pages someone, the default
    `DowngradeFilter()` turns ERROR records into WARNING ones but leaves CRITICAL
    records as they are.

    NOTE: the record itself is changed, because Python before 3.12 gives filters no
    other way; on a handler, the handlers that get the record after that one (those
    of parent loggers included) see the lowered level too.
    """

    def __init__(
        self, reduce_to: str | int = "WARNING", *, only_below: str | int = "CRITICAL"
    ) -> None:
        super().__init__()
        self.reduce_to = require_level(reduce_to, "DowngradeFilter reduce_to")
        self.only_below = require_level(only_below, "DowngradeFilter only_below")
        if self.only_below <= self.reduce_to:
            message = (
                f"DowngradeFilter only_below ({level_name(self.only_below)}) must be "
                f"above reduce_to ({level_name(self.reduce_to)}), or no record would "
                "ever be changed; swap them or raise only_below"
            )
            raise LevelError(message)
        self._reduce_to_name = level_name(self.reduce_to)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.reduce_to < record.levelno < self.only_below:
            record.levelno = self.reduce_to
            record.levelname = self._reduce_to_name
        return True

    def __repr__(self) -> str:
        return (
            f"<DowngradeFilter reduce_to={level_name(self.reduce_to)} "
            f"only_below={level_name(self.only_below)}>"
        )
