"""The raw pika side: the same work as Zocalo's, written directly on BlockingConnection.

Guarantees match the transport's: persistent messages with a message id to quorum
queues declared alike, plain sends in publisher-confirm mode with `mandatory`, manual
acks, the same prefetch, and a transaction per message where the case asks for one.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

import pika
from _bench_common import (
    BenchError,
    QueueRegistry,
    open_connection,
    small_body,
)

logger = logging.getLogger(__name__)


def persistent_properties() -> pika.BasicProperties:
    """What the transport gives every plain message: persistence, an id, a time."""
    return pika.BasicProperties(
        delivery_mode=2, message_id=uuid.uuid4().hex, timestamp=int(time.time())
    )


def publish_small(channel: Any, queue: str, index: int) -> None:
    """Publish small message number `index` to `queue` as both sides send it."""
    channel.basic_publish(
        "",
        queue,
        json.dumps(small_body(index)).encode(),
        properties=persistent_properties(),
        mandatory=True,
    )


class RawConsumer(threading.Thread):
    """Consumes one queue on its own connection, acking each message after `on_body`.

    The connection is opened by the constructor, so that timing `start()` to the last
    message leaves out the connection set-up, as it does on the Zocalo side.
    """

    def __init__(
        self,
        queue: str,
        on_body: Callable[[bytes], None],
        *,
        prefetch: int,
        timeout: float,
    ) -> None:
        super().__init__(name=f"raw-consumer-{queue}", daemon=True)
        self.queue = queue
        self.on_body = on_body
        self.prefetch = prefetch
        self.deadline = time.monotonic() + timeout
        self.stopping = threading.Event()
        self.connection = open_connection("bench-raw-consumer")

    def run(self) -> None:
        channel = self.connection.channel()
        channel.basic_qos(prefetch_count=self.prefetch)

        def deliver(
            channel: Any, method: Any, properties: pika.BasicProperties, body: bytes
        ) -> None:
            self.on_body(body)
            channel.basic_ack(method.delivery_tag)

        channel.basic_consume(self.queue, deliver)
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            self.connection.process_data_events(time_limit=0.05)
        self.connection.close()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.join(timeout)


def raw_latency(registry: QueueRegistry, count: int, timeout: float) -> list[float]:
    """Seconds from each confirmed send to the consumer's callback, one at a time."""
    queue = registry.new("raw-latency")
    producer = open_connection("bench-raw-producer")
    channel = producer.channel()
    registry.declare(channel, queue)
    channel.confirm_delivery()
    latencies: list[float] = []
    sent_at = [0.0]
    arrived = threading.Event()

    def on_body(body: bytes) -> None:
        latencies.append(time.perf_counter() - sent_at[0])
        arrived.set()

    consumer = RawConsumer(queue, on_body, prefetch=1, timeout=timeout)
    consumer.start()
    try:
        deadline = time.monotonic() + timeout
        for index in range(count):
            arrived.clear()
            sent_at[0] = time.perf_counter()
            publish_small(channel, queue, index)
            if not arrived.wait(max(0.0, deadline - time.monotonic())):
                message = f"raw one hop: {index} of {count} in {timeout:g} s"
                raise BenchError(message)
    finally:
        consumer.stop()
        producer.close()
    return latencies


def raw_throughput(
    registry: QueueRegistry, count: int, prefetch: int, timeout: float
) -> tuple[float, float]:
    """Seconds to publish `count` confirmed messages, then to consume and ack them."""
    queue = registry.new("raw-throughput")
    producer = open_connection("bench-raw-producer")
    try:
        channel = producer.channel()
        registry.declare(channel, queue)
        channel.confirm_delivery()
        started = time.perf_counter()
        for index in range(count):
            publish_small(channel, queue, index)
        publish_seconds = time.perf_counter() - started
    finally:
        producer.close()
    return publish_seconds, _consume_all(queue, count, prefetch, timeout)


def _consume_all(queue: str, count: int, prefetch: int, timeout: float) -> float:
    received = [0]
    done = threading.Event()

    def on_body(body: bytes) -> None:
        received[0] += 1
        if received[0] == count:
            done.set()

    consumer = RawConsumer(queue, on_body, prefetch=prefetch, timeout=timeout)
    started = time.perf_counter()
    consumer.start()
    try:
        if not done.wait(timeout):
            message = f"raw consume: {received[0]} of {count} in {timeout:g} s"
            raise BenchError(message)
        return time.perf_counter() - started
    finally:
        consumer.stop()


def run_raw_step(
    in_queue: str, out_queue: str, *, transactional: bool, prefetch: int
) -> int:
    """A recipe step: consume `in_queue`, forward each body to `out_queue`, until TERM.

    With `transactional` the forward and the ack commit in one transaction on the
    consuming channel; otherwise the forward is confirmed on a second channel, then
    the message is acked.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    connection = open_connection(f"bench-raw-step-{in_queue}")
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    if transactional:
        channel.tx_select()
        sender = channel
    else:
        sender = connection.channel()
        sender.confirm_delivery()

    def forward(
        channel: Any, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        # A step reads its message and writes its own, as a Zocalo service does.
        outgoing = json.dumps(json.loads(body)).encode()
        sender.basic_publish(
            "", out_queue, outgoing, properties=persistent_properties(), mandatory=True
        )
        channel.basic_ack(method.delivery_tag)
        if transactional:
            channel.tx_commit()

    channel.basic_consume(in_queue, forward)
    while not stopping.is_set():
        connection.process_data_events(time_limit=0.2)
    connection.close()
    return 0
