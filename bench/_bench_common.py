"""What both sides of the benchmark share: the broker, queue names, results, timing.

Only the RabbitMQ on 127.0.0.1:5672 is ever contacted. Every queue is named with a
uuid and recorded in a `QueueRegistry`, which deletes them all at the end.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 5672
USERNAME = "guest"
PASSWORD = "guest"
#: The transport's default delivery limit; the raw side's queues get the same.
DELIVERY_LIMIT = 5


class BenchError(Exception):
    """A benchmark step that could not finish; the message says which and why."""


def connection_parameters(name: str) -> pika.ConnectionParameters:
    """Parameters of a raw pika connection to the local broker, named for the UI."""
    return pika.ConnectionParameters(
        host=HOST,
        port=PORT,
        credentials=pika.PlainCredentials(USERNAME, PASSWORD),
        heartbeat=60,
        connection_attempts=1,
        socket_timeout=5.0,
        blocked_connection_timeout=30.0,
        client_properties={"connection_name": name},
    )


def zocalo_settings(name: str) -> dict[str, Any]:
    """Settings of a `PikaTransport` to the same broker, as raw pika gets them."""
    return {
        "host": HOST,
        "port": PORT,
        "username": USERNAME,
        "password": PASSWORD,
        "connection_attempts": 1,
        "reconnect_attempts": 0,
        "connection_name": name,
    }


def open_connection(name: str) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(connection_parameters(name))
    except pika.exceptions.AMQPConnectionError as exc:
        message = (
            f"cannot connect to RabbitMQ on {HOST}:{PORT} as {USERNAME!r}: {exc!r}; "
            "the benchmark needs the local broker running (rabbitmq-server -detached)"
        )
        raise BenchError(message) from exc


def queue_arguments(queue: str) -> dict[str, Any]:
    """Arguments equal to those `PikaTransport` declares its queues with."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT - 1,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"dlq.{queue}",
    }


@dataclass
class QueueRegistry:
    """Queues made for one run, declared alike for both sides and deleted at the end."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    names: list[str] = field(default_factory=list)

    def new(self, label: str) -> str:
        """A fresh queue name; the transport will also make `dlq.<name>`."""
        name = f"bench.{self.run_id}.{label}"
        self.names.extend([name, f"dlq.{name}"])
        return name

    def declare(self, channel: Any, *queues: str) -> None:
        """Declare `queues` and their dead-letter queues as the transport would."""
        for queue in queues:
            for name in (queue, f"dlq.{queue}"):
                channel.queue_declare(
                    name, durable=True, arguments=queue_arguments(name)
                )

    def delete_all(self) -> None:
        if not self.names:
            return
        connection = open_connection("bench-cleanup")
        try:
            channel = connection.channel()
            for name in self.names:
                channel = _delete_queue(connection, channel, name)
        finally:
            connection.close()
        logger.info("deleted %d queues of run %s", len(self.names), self.run_id)


def _delete_queue(connection: Any, channel: Any, name: str) -> Any:
    try:
        channel.queue_delete(name)
    except pika.exceptions.ChannelClosedByBroker as exc:
        logger.warning("could not delete queue %s: %s", name, exc)
        return connection.channel()
    return channel


def consumer_count(channel: Any, queue: str) -> int:
    declared = channel.queue_declare(queue, passive=True)
    return int(declared.method.consumer_count)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    """Poll `condition` until it holds; a `BenchError` naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (which must not be empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def small_body(index: int) -> dict[str, Any]:
    """A small JSON message like a recipe step's parameters."""
    return {"index": index, "file": f"image_{index:05d}.cbf", "ok": True}
