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

from zocalo_core import ConfigKey, ConfigurationError, TransportError
from zocalo_core.transport import DEFAULT_DELIVERY_LIMIT, check_name

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671
QUEUE_TYPES = ("quorum", "classic")


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
    tls: bool = False
    ca_certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    server_name: str | None = None
    verify: bool = True
    declare: bool = True
    queue_type: str = "quorum"
    single_active_consumer: frozenset[str] = frozenset()
    cancelled_consumer_timeout: float = 60.0
    #: The site's exchange of the delayed-message plugin; None: delay queues.
    delay_exchange: str | None = None

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
        default_port = DEFAULT_TLS_PORT if options.get("tls") else DEFAULT_PORT
        ports = _ports(values.get("port"), origin, default_port)
        options["endpoints"] = _endpoints(hosts, ports, origin)
        _check_tls(options, origin)
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


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be true or false")
    return value


def _queue_type(value: Any, what: str) -> str:
    if value not in QUEUE_TYPES:
        problem = f"{what} must be one of {', '.join(QUEUE_TYPES)}"
        raise ConfigurationError(problem)
    return str(value)


def _queue_names(value: Any, what: str) -> frozenset[str]:
    queues = list(value) if isinstance(value, (set, frozenset)) else _split(value)
    if not all(isinstance(queue, str) and queue.strip() for queue in queues):
        problem = f"{what} must be a queue name, a list of them, or a comma-separated"
        raise ConfigurationError(f"{problem} string of them")
    return frozenset(queue.strip() for queue in queues)


def _exchange_name(value: Any, what: str) -> str:
    try:
        return check_name(value, "exchange")
    except TransportError:
        problem = f"{what} must be an exchange name: a non-empty string without spaces"
        raise ConfigurationError(problem) from None


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
    "tls": _flag,
    "ca_certificate": _text,
    "client_certificate": _text,
    "client_key": _text,
    "server_name": _text,
    "verify": _flag,
    "declare": _flag,
    "queue_type": _queue_type,
    "single_active_consumer": _queue_names,
    "cancelled_consumer_timeout": _seconds,
    "delay_exchange": _exchange_name,
}

_TLS_ONLY = ("ca_certificate", "client_certificate", "client_key", "server_name")


def _check_tls(options: Mapping[str, Any], origin: str) -> None:
    """Refuse TLS settings that would silently do nothing."""
    if not options.get("tls"):
        given = [key for key in _TLS_ONLY if key in options]
        if given:
            problem = (
                f"{origin}: {', '.join(given)} only apply with `tls: true`; set "
                "`tls: true` or remove them"
            )
            raise ConfigurationError(problem)
        return
    if "client_key" in options and "client_certificate" not in options:
        problem = (
            f"{origin}: `client_key` is given without `client_certificate`; give "
            "the client certificate too, or remove the key"
        )
        raise ConfigurationError(problem)


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


def _ports(value: Any, origin: str, default: int) -> list[int]:
    if value is None:
        return [default]
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
    ConfigKey("tls", (bool,), summary="connect over TLS (default false)"),
    ConfigKey("ca_certificate", (str,), summary="file of CA certificates to trust"),
    ConfigKey(
        "client_certificate", (str,), summary="file of the client certificate (TLS)"
    ),
    ConfigKey("client_key", (str,), summary="file of the client certificate's key"),
    ConfigKey(
        "server_name", (str,), summary="name the server certificate must have (host)"
    ),
    ConfigKey("verify", (bool,), summary="check the server certificate (default true)"),
    ConfigKey("declare", (bool,), summary="false: only check that queues exist"),
    ConfigKey("queue_type", (str,), summary="quorum (default) or classic"),
    ConfigKey(
        "single_active_consumer",
        (str, list),
        summary="queues declared for a single active consumer",
    ),
    ConfigKey(
        "cancelled_consumer_timeout",
        (int, float),
        summary="s to resubscribe to a queue RabbitMQ cancelled",
    ),
    ConfigKey(
        "delay_exchange",
        (str,),
        summary="the site's delayed-message plugin exchange (default: delay queues)",
    ),
)
