"""`LoggingVerbosity`: logging definitions applied one by one as verbosity rises."""

from __future__ import annotations

import copy
import logging
import operator
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from zocalo_core import ConfigurationError

from zocalo_plugin_logging._dictconfig import (
    apply_definition,
    check_definition,
    secret_values,
)

logger = logging.getLogger(__name__)


def _prepare_level(level: object, version: object, what: str) -> dict[str, Any]:
    if not isinstance(level, Mapping):
        message = (
            f"{what} is {type(level).__name__}, not a mapping; give a logging "
            "definition such as `loggers: {zocalo: {level: DEBUG}}`"
        )
        raise ConfigurationError(message)
    definition = copy.deepcopy(dict(level))
    if "verbose" in definition:
        message = f"{what} has its own `verbose` list; levels cannot be nested"
        raise ConfigurationError(message)
    definition.setdefault("version", version)
    definition.setdefault("incremental", True)
    check_definition(definition, what)
    return definition


def prepare_levels(
    levels: object, *, version: object = 1, source: str = "the logging configuration"
) -> list[dict[str, Any]]:
    """Checked copies of the definitions of a `verbose` list, defaults filled in.

    Each is incremental unless it says otherwise and takes `version` from the main
    definition. Level numbers in messages start at 1, the verbosity that applies it.
    """
    if levels is None:
        return []
    if not isinstance(levels, list | tuple):
        message = (
            f"{source}: `verbose` must be a list of logging definitions, one per "
            f"verbosity level, not {type(levels).__name__}"
        )
        raise ConfigurationError(message)
    return [
        _prepare_level(level, version, f"verbosity level {number} of {source}")
        for number, level in enumerate(levels, start=1)
    ]


class LoggingVerbosity:
    """Logging definitions applied in order as the verbosity is raised.

    `levels[0]` is applied when the verbosity reaches 1, `levels[1]` at 2, and so
    on. Verbosity starts at 0 and never goes down: setting a value no higher than the
    current one does nothing, and a value past the last level applies every level and
    stops there, so `verbosity` then reads the number of levels. Every definition is
    checked when the object is made, before any is applied.

    Example::

        verbosity = LoggingVerbosity([{"loggers": {"zocalo": {"level": "DEBUG"}}}])
        verbosity.verbosity = 1
    """

    def __init__(
        self,
        levels: Sequence[Mapping[str, Any]] = (),
        *,
        version: int = 1,
        source: str = "the logging configuration",
    ) -> None:
        self._levels = prepare_levels(levels, version=version, source=source)
        self._source = source
        self._secrets = secret_values(self._levels)
        self._verbosity = 0
        self._lock = threading.Lock()

    @property
    def verbosity(self) -> int:
        """How many levels have been applied."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: int) -> None:
        target = min(operator.index(value), len(self._levels))
        with self._lock:
            while self._verbosity < target:
                number = self._verbosity + 1
                what = f"verbosity level {number} of {self._source}"
                apply_definition(self._levels[number - 1], what, self._secrets)
                self._verbosity = number
                logger.debug("raised logging verbosity to %d", number)

    @property
    def max_verbosity(self) -> int:
        """The number of levels defined: the highest verbosity that changes anything."""
        return len(self._levels)

    def __repr__(self) -> str:
        return f"<LoggingVerbosity verbosity={self._verbosity}>"
