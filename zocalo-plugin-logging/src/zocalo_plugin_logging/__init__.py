"""Logging configuration and Graylog handlers for Zocalo.

Installed beside zocalo-core, this distribution registers the `logging` and
`graylog` configuration plugins. Its handler factories and filter are for use in a
site file's `logging` block, for instance as
`"()": zocalo_plugin_logging.GraylogUDPHandler`.
"""

from __future__ import annotations

from zocalo_plugin_logging._filters import DowngradeFilter
from zocalo_plugin_logging._graylog import GraylogTCPHandler, GraylogUDPHandler
from zocalo_plugin_logging._verbosity import LoggingVerbosity

__all__ = [
    "DowngradeFilter",
    "GraylogTCPHandler",
    "GraylogUDPHandler",
    "LoggingVerbosity",
]
