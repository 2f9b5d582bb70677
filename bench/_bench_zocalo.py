"""The Zocalo side: the same work through `PikaTransport` and a `ServiceRunner`."""

from __future__ import annotations

import logging
import threading
import time

from _bench_common import (
    BenchError,
    QueueRegistry,
    open_connection,
    small_body,
    zocalo_settings,
)
from zocalo_core import (
    Handling,
    Message,
    RunnerOptions,
    Service,
    ServiceRunner,
    Subscribe,
)
from zocalo_transport_pika import PikaTransport

logger = logging.getLogger(__name__)


def _declare(registry: QueueRegistry, *queues: str) -> None:
    """Declare as the raw side does, so set-up costs fall outside every timing."""
    connection = open_connection("bench-declare")
    try:
        registry.declare(connection.channel(), *queues)
    finally:
        connection.close()


def zocalo_latency(registry: QueueRegistry, count: int, timeout: float) -> list[float]:
    """Seconds from each send to the consumer's handler, one message at a time."""
    queue = registry.new("zocalo-latency")
    _declare(registry, queue)
    latencies: list[float] = []
    sent_at = [0.0]
    arrived = threading.Event()
    producer = PikaTransport(zocalo_settings("bench-zocalo-producer"))
    consumer = PikaTransport(zocalo_settings("bench-zocalo-consumer"))

    def handler(message: Message) -> None:
        latencies.append(time.perf_counter() - sent_at[0])
        consumer.ack(message)
        arrived.set()

    with producer, consumer:
        consumer.subscribe(queue, handler, prefetch=1)
        deadline = time.monotonic() + timeout
        for index in range(count):
            arrived.clear()
            sent_at[0] = time.perf_counter()
            producer.send(queue, small_body(index))
            if not arrived.wait(max(0.0, deadline - time.monotonic())):
                message = f"zocalo one hop: {index} of {count} in {timeout:g} s"
                raise BenchError(message)
    return latencies


def zocalo_throughput(
    registry: QueueRegistry, count: int, prefetch: int, timeout: float
) -> tuple[float, float]:
    """Seconds to send `count` messages, then to consume and ack them."""
    queue = registry.new("zocalo-throughput")
    _declare(registry, queue)
    with PikaTransport(zocalo_settings("bench-zocalo-producer")) as producer:
        started = time.perf_counter()
        for index in range(count):
            producer.send(queue, small_body(index))
        publish_seconds = time.perf_counter() - started
    received = [0]
    done = threading.Event()
    with PikaTransport(zocalo_settings("bench-zocalo-consumer")) as consumer:

        def handler(message: Message) -> None:
            consumer.ack(message)
            received[0] += 1
            if received[0] == count:
                done.set()

        started = time.perf_counter()
        consumer.subscribe(queue, handler, prefetch=prefetch)
        if not done.wait(timeout):
            message = f"zocalo consume: {received[0]} of {count} in {timeout:g} s"
            raise BenchError(message)
        consume_seconds = time.perf_counter() - started
    return publish_seconds, consume_seconds


def step_service(
    in_queue: str, out_queue: str, *, transactional: bool, prefetch: int
) -> type[Service]:
    """A recipe step as a service: each message's body goes on to `out_queue`."""
    handling = Handling.TRANSACTION if transactional else Handling.ACK_AFTER

    class BenchStep(Service):
        name = "bench-step"
        subscriptions = (
            Subscribe(
                in_queue,
                "forward",
                recipe=False,
                prefetch=prefetch,
                handling=handling,
            ),
        )

        def forward(self, message: Message) -> None:
            self.send(out_queue, message.body)

    return BenchStep


def run_zocalo_step(
    in_queue: str, out_queue: str, *, transactional: bool, prefetch: int
) -> int:
    """Run the step service as `zocalo service` runs one; SIGTERM stops it."""
    service_class = step_service(
        in_queue, out_queue, transactional=transactional, prefetch=prefetch
    )
    transport = PikaTransport(zocalo_settings(f"bench-zocalo-step-{in_queue}"))
    runner = ServiceRunner(service_class, transport, options=RunnerOptions())
    return runner.run()
