"""Fixtures for the pika transport's tests, against the RabbitMQ on 127.0.0.1.

Every test that needs the broker is marked `broker`; without a broker it fails, it is
never skipped. Tests use names no other test uses, and delete what they made.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from zocalo_core.transport import MAX_NAME_BYTES, dead_letter_queue
from zocalo_transport_pika import PikaTransport

logger = logging.getLogger(__name__)

BROKER: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5672,
    "username": "guest",
    "password": "guest",
    "vhost": "/",
}


def make_transport(**options: Any) -> PikaTransport:
    """A new, unconnected transport to the test broker."""
    return PikaTransport(**{**BROKER, "call_timeout": 10.0, **options})


@pytest.fixture
def transport_maker() -> Callable[..., PikaTransport]:
    """`make_transport(**options)`: a new, unconnected transport to the broker."""
    return make_transport


@pytest.fixture
def broker_cleanup() -> Callable[[Iterable[str]], None]:
    """`delete(names)`: delete those queues, their DLQs and exchanges."""
    return delete_from_broker


def delete_from_broker(names: Iterable[str]) -> None:
    """Delete the queues, their dead-letter queues and the exchanges named."""
    connection = _raw_connection()
    try:
        channel = connection.channel()
        for name in dict.fromkeys(names):
            # A test that consumes a dead-letter queue has the transport declare
            # that queue's own dead-letter queue too.
            dead_letters = dead_letter_queue(name)
            for queue in (name, dead_letters, dead_letter_queue(dead_letters)):
                if len(queue.encode("utf-8")) <= MAX_NAME_BYTES:
                    channel.queue_delete(queue)
            if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
                channel.exchange_delete(name)
    finally:
        connection.close()


def _raw_connection() -> Any:
    credentials = pika.PlainCredentials(BROKER["username"], BROKER["password"])
    parameters = pika.ConnectionParameters(
        BROKER["host"], BROKER["port"], BROKER["vhost"], credentials
    )
    return pika.BlockingConnection(parameters)


@pytest.fixture
def exchange_binder() -> Iterator[Callable[[str, str, str], None]]:
    """`bind(exchange, routing_key, queue)` on the broker, as a site's own set-up
    would: a direct exchange, made when new, deleted after the test."""
    connection = _raw_connection()
    channel = connection.channel()
    made: list[str] = []

    def bind(exchange: str, routing_key: str, queue: str) -> None:
        if exchange not in made:
            channel.exchange_declare(exchange, exchange_type="direct")
            made.append(exchange)
        channel.queue_bind(queue, exchange, routing_key=routing_key)

    yield bind
    try:
        for exchange in made:
            channel.exchange_delete(exchange)
    finally:
        connection.close()


@pytest.fixture
def names() -> Iterator[Callable[[str], str]]:
    """A factory of unique names; their queues and exchanges are deleted after."""
    made: list[str] = []

    def make(label: str = "queue") -> str:
        name = f"zocalo.pika-test.{label}.{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield make
    delete_from_broker(made)


@pytest.fixture
def connected(names: Callable[[str], str]) -> Iterator[Callable[..., PikaTransport]]:
    """Make and connect transports; all are disconnected after the test.

    It needs `names` so that the transports are gone before the names' queues are
    deleted: a consumer would declare its queue again, and it would stay behind.
    """
    made: list[PikaTransport] = []

    def connect(**options: Any) -> PikaTransport:
        transport = make_transport(**options)
        made.append(transport)
        transport.connect()
        return transport

    yield connect
    for transport in made:
        try:
            transport.disconnect()
        except Exception:
            logger.warning("Could not disconnect %r", transport, exc_info=True)


def broker_tool(*command: str) -> str:
    """What a RabbitMQ command-line tool prints (`rabbitmqctl -q ...`), boundedly."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=True
    ).stdout


@pytest.fixture
def rabbitmq_tool() -> Callable[..., str]:
    """`run("rabbitmqctl", "-q", ...)`: what the tool prints; fails on an error."""
    return broker_tool


def close_from_broker(connection_name: str) -> None:
    """Have RabbitMQ close the one connection called `connection_name`."""
    listing = broker_tool(
        "rabbitmqctl", "-q", "list_connections", "pid", "client_properties"
    )
    pids = [
        line.split("\t")[0] for line in listing.splitlines() if connection_name in line
    ]
    assert len(pids) == 1, f"expected one connection {connection_name!r}: {listing!r}"
    broker_tool("rabbitmqctl", "-q", "close_connection", pids[0], "closed by a test")


@pytest.fixture
def broker_closes() -> Callable[[str], None]:
    """`close(connection_name)`: RabbitMQ closes that one connection (ours only)."""
    return close_from_broker


@pytest.fixture
def raw() -> Iterator[Any]:
    """A plain pika connection to the broker; `raw.channel()` for a new channel."""
    import pika

    credentials = pika.PlainCredentials("guest", "guest")
    parameters = pika.ConnectionParameters("127.0.0.1", 5672, "/", credentials)
    connection = pika.BlockingConnection(parameters)
    yield connection
    connection.close()


#: `get(queue, timeout=5.0)`: (method, properties, body) of the next message.
RawGet = Callable[..., tuple[Any, Any, bytes]]


@pytest.fixture
def raw_get(raw: Any) -> RawGet:
    """Take the next message of a queue through plain pika, as another client sees
    it (waiting up to `timeout` s for one): `(method, properties, body)`."""
    channel = raw.channel()

    def get(queue: str, timeout: float = 5.0) -> tuple[Any, Any, bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return method, properties, body
            time.sleep(0.02)
        pytest.fail(f"no message on {queue!r} within {timeout} s")

    return get


class PlainSender:
    """Sends the numbers 0 to `count - 1` to `queue` from a thread of its own while
    a test does something else; `failures` holds what the sends raised."""

    def __init__(self, transport: PikaTransport, queue: str, count: int) -> None:
        self.failures: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(transport, queue, count)
        )

    def _run(self, transport: PikaTransport, queue: str, count: int) -> None:
        for number in range(count):
            try:
                transport.send(queue, number)
            except BaseException as exc:
                self.failures.append(exc)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._thread.join(30)
        assert not self._thread.is_alive(), "the sender did not finish in 30 s"


@pytest.fixture
def plain_sender() -> type[PlainSender]:
    """`plain_sender(transport, queue, count)`, a `PlainSender`; `with
    sender.running():` sends while the block runs and waits for the rest after."""
    return PlainSender


def _accepted(raw: Any, declare: Callable[[Any], object], refusal: int) -> bool:
    """Whether RabbitMQ accepts a declaration, or refuses it with `refusal`."""
    channel = raw.channel()
    try:
        declare(channel)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != refusal:
            raise
        return False
    channel.close()
    return True


@pytest.fixture
def queue_exists(raw: Any) -> Callable[[str], bool]:
    """`exists(queue)`: whether the queue is on the broker (a passive declare)."""
    return lambda queue: _accepted(
        raw, lambda channel: channel.queue_declare(queue, passive=True), 404
    )


@pytest.fixture
def declared_with(raw: Any) -> Callable[[str, dict[str, Any]], bool]:
    """`declared_with(queue, arguments)`: whether the queue exists (durable) with
    exactly these arguments; RabbitMQ refuses (406) a declaration that differs."""
    return lambda queue, arguments: _accepted(
        raw,
        lambda channel: channel.queue_declare(queue, durable=True, arguments=arguments),
        406,
    )
