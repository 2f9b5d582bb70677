"""The connection settings of the pika transport, from a `pika` block or keywords.

One parser serves the site file and `PikaTransport(host=..., port=...)`, so both accept
the same keys and report the same errors. `host` and `port` keep the forms of the
existing system: a host may be a list or a comma-separated string, for failover, and the
port one value for every host or one per host.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any

from zocalo_core import ConfigKey, ConfigurationError
from zocalo_core.transport import DEFAULT_DELIVERY_LIMIT

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5672


@dataclasses.dataclass(frozen=True)
class PikaSettings:
    """Everything the pika transport needs to reach and use a RabbitMQ broker.

    `endpoints` are the `(host, port)` pairs to try, in order. Times are in seconds.
    """

    endpoints: tuple[tuple[str, int], ...] = (("localhost", DEFAULT_PORT),)
    username: str = "guest"
    password: str = dataclasses.field(default="guest", repr=False)
    vhost: str = "/"
    heartbeat: int = 60
    connection_attempts: int = 3
    retry_delay: float = 1.0
    socket_timeout: float = 10.0
    call_timeout: float = 30.0
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    reconnect_attempts: int = 10
    reconnect_max_delay: float = 30.0
    connection_name: str = "zocalo"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], origin: str) -> PikaSettings:
        """Settings from a block or keywords; `origin` names them in errors."""
        unknown = sorted(set(values) - set(_FIELDS))
        if unknown:
            problem = (
                f"{origin}: unknown pika setting(s) {', '.join(unknown)}; the known "
                f"ones are {', '.join(sorted(_FIELDS))}"
            )
            raise ConfigurationError(problem)
        options: dict[str, Any] = {}
        for key, value in values.items():
            if key not in ("host", "port") and value is not None:
                options[key] = _FIELDS[key](value, f"{origin}: `{key}`")
        hosts = _hosts(values.get("host"), origin)
        ports = _ports(values.get("port"), origin)
        options["endpoints"] = _endpoints(hosts, ports, origin)
        return cls(**options)

    def describe_endpoints(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in self.endpoints)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _whole(minimum: int) -> Any:
    def check(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            problem = f"{what} must be a whole number of at least {minimum}"
            raise ConfigurationError(problem)
        return value

    return check


def _seconds(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{what} must be a number of seconds above 0")
    return float(value)


_FIELDS: dict[str, Any] = {
    "host": None,
    "port": None,
    "username": _text,
    "password": _text,
    "vhost": _text,
    "heartbeat": _whole(0),
    "connection_attempts": _whole(1),
    "retry_delay": _seconds,
    "socket_timeout": _seconds,
    "call_timeout": _seconds,
    "delivery_limit": _whole(1),
    "reconnect_attempts": _whole(0),
    "reconnect_max_delay": _seconds,
    "connection_name": _text,
}


def _split(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _hosts(value: Any, origin: str) -> list[str]:
    if value is None:
        return ["localhost"]
    hosts = _split(value)
    if not hosts or not all(isinstance(host, str) and host for host in hosts):
        problem = (
            f"{origin}: `host` must be a host name, a list of them, or a "
            "comma-separated string of them"
        )
        raise ConfigurationError(problem)
    return [host.strip() for host in hosts]


def _ports(value: Any, origin: str) -> list[int]:
    if value is None:
        return [DEFAULT_PORT]
    ports: list[int] = []
    for item in _split(value):
        try:
            port = int(item) if not isinstance(item, bool) else -1
        except (TypeError, ValueError):
            port = -1
        if not 0 < port < 65536 or (isinstance(item, float) and item != port):
            problem = (
                f"{origin}: `port` must be a port number (1 to 65535), a list of "
                "them, or a comma-separated string of them"
            )
            raise ConfigurationError(problem)
        ports.append(port)
    if not ports:
        raise ConfigurationError(f"{origin}: `port` is empty; give a port number")
    return ports


def _endpoints(
    hosts: list[str], ports: list[int], origin: str
) -> tuple[tuple[str, int], ...]:
    if len(ports) == 1:
        return tuple((host, ports[0]) for host in hosts)
    if len(ports) == len(hosts):
        return tuple(zip(hosts, ports, strict=True))
    problem = (
        f"{origin}: {len(hosts)} host(s) but {len(ports)} ports; give one port for "
        "every host, or one port per host in the same order"
    )
    raise ConfigurationError(problem)


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "host",
        (str, list),
        summary="broker host name, or several (a list or comma-separated) for failover",
    ),
    ConfigKey("port", (), summary="port (int, list or comma-separated string)"),
    ConfigKey("username", (str,), summary="user name (default guest)"),
    ConfigKey("password", (str,), secret=True, summary="password (default guest)"),
    ConfigKey("vhost", (str,), summary="virtual host (default /)"),
    ConfigKey("heartbeat", (int,), summary="heartbeat interval in s, 0 for none"),
    ConfigKey(
        "connection_attempts", (int,), summary="rounds through the hosts at connect"
    ),
    ConfigKey("retry_delay", (int, float), summary="s between connection rounds"),
    ConfigKey("socket_timeout", (int, float), summary="s to open a socket"),
    ConfigKey("call_timeout", (int, float), summary="s any call waits for the broker"),
    ConfigKey("delivery_limit", (int,), summary="deliveries before dead-lettering (5)"),
    ConfigKey(
        "reconnect_attempts",
        (int,),
        summary="attempts to restore a lost connection; 0 gives up at once",
    ),
    ConfigKey(
        "reconnect_max_delay", (int, float), summary="longest s between attempts"
    ),
    ConfigKey(
        "connection_name", (str,), summary="name shown in the RabbitMQ connections"
    ),
)
