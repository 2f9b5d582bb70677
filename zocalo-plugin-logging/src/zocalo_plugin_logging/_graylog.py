"""Graylog GELF handlers on graypy, with syslog severities for every Python level.

graypy maps only the five standard Python levels to syslog severities and sends any
other level number as it is, which Graylog then reads as a severity. These handlers
compute the severity per record instead, so a custom level such as 25 arrives as
NOTICE; graypy's own module-wide table is never changed.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import graypy
from zocalo_core import ConfigurationError

from zocalo_plugin_logging._levels import syslog_severity

logger = logging.getLogger(__name__)

_HIGHEST_PORT = 65535


def _check_address(handler: str, host: object, port: object) -> tuple[str, int]:
    if not isinstance(host, str) or not host.strip():
        message = f"{handler} host is {host!r}; give the Graylog server's host name"
        raise ConfigurationError(message)
    if isinstance(port, bool) or not isinstance(port, int):
        message = f"{handler} port is {port!r}; give the GELF input's port number"
        raise ConfigurationError(message)
    if not 0 < port <= _HIGHEST_PORT:
        message = f"{handler} port {port} is not between 1 and {_HIGHEST_PORT}"
        raise ConfigurationError(message)
    return host.strip(), port


def resolve_host(host: str, port: int, socket_type: socket.SocketKind) -> str:
    """The address of `host`, looked up once, or `host` itself if the lookup fails.

    Looking the name up once keeps a slow or failing name server from delaying every
    log record; keeping the name lets logging work once the name server is back.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket_type)
    except OSError as exc:
        logger.warning(
            "could not look up Graylog host %r (%s); using the name as given", host, exc
        )
        return host
    return str(addresses[0][4][0])


def _with_syslog_level(
    gelf_dict: dict[str, Any], record: logging.LogRecord
) -> dict[str, Any]:
    gelf_dict["level"] = syslog_severity(record.levelno)
    return gelf_dict


# NOTE: graypy ships no type hints, so its classes are Any to mypy; overriding
# _make_gelf_dict is the one place graypy 2.x computes a record's level.
class GraylogUDPHandler(graypy.GELFUDPHandler):  # type: ignore[misc]
    """A GELF handler sending compressed datagrams to a Graylog UDP input.

    Usable from dictConfig as `"()": zocalo_plugin_logging.GraylogUDPHandler` with
    `host` and `port`; other keyword arguments go to graypy's `GELFUDPHandler`
    (`level_names` is on unless turned off).
    """

    def __init__(self, *, host: str, port: int, **options: Any) -> None:
        name, port = _check_address(type(self).__name__, host, port)
        options.setdefault("level_names", True)
        super().__init__(resolve_host(name, port, socket.SOCK_DGRAM), port, **options)
        self.graylog_host = name

    def makeSocket(self) -> socket.socket:
        # The standard datagram handler always makes an IPv4 socket.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        return socket.socket(family, socket.SOCK_DGRAM)

    def _make_gelf_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        gelf_dict: dict[str, Any] = super()._make_gelf_dict(record)
        return _with_syslog_level(gelf_dict, record)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {self.graylog_host}:{self.port} ({level})>"


class GraylogTCPHandler(graypy.GELFTCPHandler):  # type: ignore[misc]
    """A GELF handler sending null-terminated records to a Graylog TCP input.

    Usable from dictConfig as `"()": zocalo_plugin_logging.GraylogTCPHandler` with
    `host` and `port`; other keyword arguments go to graypy's `GELFTCPHandler`
    (`level_names` is on unless turned off). The connection is opened on the first
    record and reopened, with back-off, after it breaks.
    """

    def __init__(self, *, host: str, port: int, **options: Any) -> None:
        name, port = _check_address(type(self).__name__, host, port)
        options.setdefault("level_names", True)
        super().__init__(resolve_host(name, port, socket.SOCK_STREAM), port, **options)
        self.graylog_host = name

    def _make_gelf_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        gelf_dict: dict[str, Any] = super()._make_gelf_dict(record)
        return _with_syslog_level(gelf_dict, record)

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} {self.graylog_host}:{self.port} ({level})>"
