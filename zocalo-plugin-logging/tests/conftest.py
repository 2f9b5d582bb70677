"""Fixtures for zocalo-plugin-logging: logging state restored after every test, and
local Graylog listeners on 127.0.0.1 only."""

from __future__ import annotations

import json
import logging
import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

#: Seconds any test waits for a socket before it fails.
SOCKET_TIMEOUT = 5.0


@dataclass
class LoggerState:
    level: int
    handlers: list[logging.Handler]
    filters: list[Any]
    propagate: bool
    disabled: bool


def _state_of(logger: logging.Logger) -> LoggerState:
    return LoggerState(
        logger.level,
        list(logger.handlers),
        list(logger.filters),
        logger.propagate,
        logger.disabled,
    )


def _all_loggers() -> dict[str, logging.Logger]:
    loggers = {
        name: item
        for name, item in logging.root.manager.loggerDict.items()
        if isinstance(item, logging.Logger)
    }
    loggers[""] = logging.getLogger()
    return loggers


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put every logger back as it was, and close handlers the test added."""
    saved = {name: _state_of(logger) for name, logger in _all_loggers().items()}
    saved_handlers = {id(h) for state in saved.values() for h in state.handlers}
    yield
    for name, logger in _all_loggers().items():
        state = saved.get(name, LoggerState(logging.NOTSET, [], [], True, False))
        for handler in logger.handlers:
            if id(handler) not in saved_handlers:
                handler.close()
        logger.setLevel(state.level)
        logger.handlers[:] = state.handlers
        logger.filters[:] = state.filters
        logger.propagate = state.propagate
        logger.disabled = state.disabled


@pytest.fixture
def quiet_logger(request: pytest.FixtureRequest) -> logging.Logger:
    """A logger of the test's own, at DEBUG, that does not pass records upwards."""
    logger = logging.getLogger(f"zocalo_logging_tests.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


class UDPListener:
    """A UDP socket bound to a free port of 127.0.0.1, reading GELF datagrams."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(SOCKET_TIMEOUT)
        self.socket.bind(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])

    def receive(self) -> dict[str, Any]:
        """The next GELF datagram, decompressed and decoded."""
        datagram = self.socket.recv(65536)
        decoded: dict[str, Any] = json.loads(zlib.decompress(datagram))
        return decoded


class TCPListener:
    """A listening TCP socket on a free port of 127.0.0.1, reading GELF frames."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.settimeout(SOCKET_TIMEOUT)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(1)
        self.port = int(self.socket.getsockname()[1])

    def receive(self) -> dict[str, Any]:
        """The first null-terminated GELF frame sent over the next connection."""
        connection, _ = self.socket.accept()
        received = b""
        with connection:
            connection.settimeout(SOCKET_TIMEOUT)
            # Bounded: each recv waits at most SOCKET_TIMEOUT, and the size is capped.
            while b"\0" not in received and len(received) < 1_000_000:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        frame, _, _ = received.partition(b"\0")
        decoded: dict[str, Any] = json.loads(frame)
        return decoded


@pytest.fixture
def udp_listener() -> Iterator[UDPListener]:
    listener = UDPListener()
    yield listener
    listener.socket.close()


@pytest.fixture
def tcp_listener() -> Iterator[TCPListener]:
    listener = TCPListener()
    yield listener
    listener.socket.close()
