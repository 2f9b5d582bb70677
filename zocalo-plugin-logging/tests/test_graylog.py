"""The Graylog handlers, sending to listeners on 127.0.0.1 only."""

from __future__ import annotations

import logging
import socket
from typing import Any

import graypy.handler
import pytest
from zocalo_core import ConfigurationError
from zocalo_plugin_logging import GraylogTCPHandler, GraylogUDPHandler

MESSAGE_EXTRA = {
    "service": "Dispatcher",
    "queue": "processing_recipe",
    "recipe_ID": "6f1a0f1c",
    "message_id": "m-1",
}


def test_udp_handler_sends_a_compressed_gelf_datagram(
    udp_listener: Any, quiet_logger: logging.Logger
) -> None:
    handler = GraylogUDPHandler(host="127.0.0.1", port=udp_listener.port)
    quiet_logger.addHandler(handler)

    quiet_logger.warning("recipe %s started", "example", extra=MESSAGE_EXTRA)
    gelf = udp_listener.receive()

    assert gelf["short_message"] == "recipe example started"
    assert gelf["level"] == 4
    assert gelf["level_name"] == "WARNING"
    assert gelf["_service"] == "Dispatcher"
    assert gelf["_recipe_ID"] == "6f1a0f1c"
    assert gelf["_queue"] == "processing_recipe"
    assert gelf["_message_id"] == "m-1"


@pytest.mark.parametrize(("levelno", "severity"), [(10, 7), (25, 5), (50, 2), (60, 1)])
def test_udp_handler_maps_every_level_to_syslog(
    udp_listener: Any, quiet_logger: logging.Logger, levelno: int, severity: int
) -> None:
    quiet_logger.addHandler(GraylogUDPHandler(host="127.0.0.1", port=udp_listener.port))

    quiet_logger.log(levelno, "at %d", levelno)

    assert udp_listener.receive()["level"] == severity


def test_graypy_level_table_is_left_alone(
    udp_listener: Any, quiet_logger: logging.Logger
) -> None:
    before = dict(graypy.handler.SYSLOG_LEVELS)
    quiet_logger.addHandler(GraylogUDPHandler(host="127.0.0.1", port=udp_listener.port))

    quiet_logger.log(25, "notice")
    udp_listener.receive()

    assert before == graypy.handler.SYSLOG_LEVELS
    assert 25 not in graypy.handler.SYSLOG_LEVELS


def test_tcp_handler_sends_a_null_terminated_gelf_frame(
    tcp_listener: Any, quiet_logger: logging.Logger
) -> None:
    handler = GraylogTCPHandler(host="127.0.0.1", port=tcp_listener.port)
    quiet_logger.addHandler(handler)

    quiet_logger.error("step failed", extra=MESSAGE_EXTRA)
    gelf = tcp_listener.receive()

    assert gelf["short_message"] == "step failed"
    assert gelf["level"] == 3
    assert gelf["level_name"] == "ERROR"
    assert gelf["_service"] == "Dispatcher"
    assert gelf["_recipe_ID"] == "6f1a0f1c"


def test_host_is_resolved_once_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []

    def fake_lookup(host: str, port: int, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_DGRAM, 0, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_lookup)

    handler = GraylogUDPHandler(host="graylog.invalid", port=12201)
    handler.close()

    assert lookups == ["graylog.invalid"]
    assert handler.host == "127.0.0.1"
    assert repr(handler) == "<GraylogUDPHandler graylog.invalid:12201 (NOTSET)>"


def test_host_name_is_kept_when_it_cannot_be_resolved(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_lookup(host: str, port: int, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing_lookup)

    handler = GraylogTCPHandler(host="graylog.invalid", port=12201)
    handler.close()

    assert handler.host == "graylog.invalid"
    assert "could not look up Graylog host 'graylog.invalid'" in caplog.text


def test_level_names_can_be_turned_off(
    udp_listener: Any, quiet_logger: logging.Logger
) -> None:
    quiet_logger.addHandler(
        GraylogUDPHandler(host="127.0.0.1", port=udp_listener.port, level_names=False)
    )

    quiet_logger.info("plain")

    assert "level_name" not in udp_listener.receive()


@pytest.mark.parametrize(
    ("host", "port", "problem"),
    [
        ("", 12201, "host is ''"),
        (None, 12201, "host is None"),
        ("127.0.0.1", "12201", "port is '12201'"),
        ("127.0.0.1", True, "port is True"),
        ("127.0.0.1", 0, "port 0 is not between 1 and 65535"),
        ("127.0.0.1", 70000, "port 70000 is not between 1 and 65535"),
    ],
)
def test_bad_address_is_a_configuration_error(
    host: Any, port: Any, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"GraylogUDPHandler {problem}"):
        GraylogUDPHandler(host=host, port=port)


def test_host_and_port_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        GraylogUDPHandler("127.0.0.1", 12201)  # type: ignore[call-arg]
