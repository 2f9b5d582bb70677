"""The memory broker beyond the protocol: counting, waiting, peeking, sharing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from zocalo_core._errors import DisconnectedError, TransportError
from zocalo_core._memory import (
    MEMORY_TRANSPORT,
    MemoryBroker,
    MemoryTransport,
    default_broker,
)
from zocalo_core.testing import Collector, QueuedMessage
from zocalo_core.transport import DEATHS_HEADER, ConnectionState, Message

WAIT = 5.0


def test_outstanding_counts_each_state(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue, slow_queue = unique_name(), unique_name()
    release = threading.Event()
    entered = threading.Event()

    def block(message: Message) -> None:
        entered.set()
        release.wait(WAIT)

    memory_transport.send(queue, "queued")
    memory_transport.send(queue, "delayed", delay=30)
    held = Collector()
    memory_transport.subscribe(unique_name(), held)
    memory_transport.send(held_queue := unique_name(), "unacknowledged")
    memory_transport.subscribe(held_queue, held)
    memory_transport.subscribe(slow_queue, block, acknowledgement=False)
    memory_transport.send(slow_queue, "handling")
    held.wait_for(1, WAIT)
    assert entered.wait(WAIT)
    try:
        states = sorted(m.state for m in _all(memory_broker))
        assert states == ["delayed", "handling", "queued", "unacknowledged"]
        assert memory_broker.outstanding() == 4
    finally:
        release.set()
    assert memory_broker.wait_idle(WAIT, match=lambda m: m.state == "handling")
    assert memory_broker.outstanding() == 3


def _all(broker: MemoryBroker) -> list[QueuedMessage]:
    seen: list[QueuedMessage] = []
    broker.outstanding(lambda message: seen.append(message) is None)
    return seen


def test_outstanding_matches_headers_and_bodies(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    memory_transport.send(queue, {"recipe": 1}, headers={"run": "a"})
    memory_transport.send(queue, {"recipe": 2}, headers={"run": "b"})
    memory_transport.send(queue, b"\xff not json", headers={"run": "a"})
    assert memory_broker.outstanding(lambda m: m.headers.get("run") == "a") == 2
    assert memory_broker.outstanding(lambda m: m.raw.startswith(b"{")) == 2
    assert (
        memory_broker.outstanding(
            lambda m: m.raw[:1] == b"{" and m.body == {"recipe": 2}
        )
        == 1
    )


def test_dead_letters_count_only_when_asked(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    memory_transport.subscribe(queue, lambda m: memory_transport.reject(m, "no"))
    memory_transport.send(queue, "doomed")
    assert memory_broker.wait_idle(WAIT)
    assert memory_broker.outstanding() == 0
    assert memory_broker.outstanding(include_dead_letters=True) == 1
    (dead,) = memory_broker.peek(f"dlq.{queue}")
    assert dead.headers[DEATHS_HEADER][0]["error"] == "no"  # type: ignore[index,call-overload]


def test_wait_idle_follows_the_work(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    first, second = unique_name(), unique_name()

    def forward(message: Message) -> None:
        memory_transport.send(second, message.body)
        memory_transport.ack(message)

    memory_transport.subscribe(first, forward)
    memory_transport.send(first, "along", delay=0.2)
    assert not memory_broker.wait_idle(0.05)
    assert memory_broker.wait_idle(WAIT, match=lambda m: m.destination == first)
    assert memory_broker.peek(second)[0].body == "along"
    assert not memory_broker.wait_idle(0.1)
    done = Collector(memory_transport, ack=True)
    memory_transport.subscribe(second, done)
    assert memory_broker.wait_idle(WAIT)
    assert done.bodies == ["along"]


def test_wait_idle_sees_expiry_without_a_consumer(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    memory_transport.send(unique_name(), "stale", expiration=0.1)
    assert memory_broker.outstanding() == 1
    started = time.monotonic()
    assert memory_broker.wait_idle(WAIT)
    assert time.monotonic() - started < WAIT


def test_peek_shows_delivery_order_without_consuming(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    memory_transport.send(queue, "old low", priority=1)
    memory_transport.send(queue, "high", priority=9, headers={"h": 1})
    memory_transport.send(queue, "new low", priority=1)
    memory_transport.send(queue, "later", delay=30)
    peeked = memory_broker.peek(queue)
    assert [m.body for m in peeked] == ["high", "old low", "new low"]
    assert peeked[0].headers == {"h": 1}
    assert peeked[0].priority == 9
    assert {m.state for m in peeked} == {"queued"}
    assert memory_broker.peek("no such queue") == []
    collector = Collector(memory_transport, ack=True)
    memory_transport.subscribe(queue, collector)
    assert collector.wait_for(3, WAIT)[0].body == "high"


def test_default_broker_is_shared(unique_name: Callable[..., str]) -> None:
    queue = unique_name()
    sender, receiver = MemoryTransport(), MemoryTransport()
    assert sender.broker is receiver.broker is default_broker()
    with sender, receiver:
        collector = Collector(receiver, ack=True)
        receiver.subscribe(queue, collector)
        sender.send(queue, "across")
        assert collector.wait_for(1, WAIT)[0].body == "across"


def test_plugin_record_makes_a_transport_on_the_default_broker() -> None:
    assert MEMORY_TRANSPORT.name == "memory"
    transport = MEMORY_TRANSPORT.factory(None)
    assert isinstance(transport, MemoryTransport)
    assert transport.state is ConnectionState.DISCONNECTED
    assert transport.broker is default_broker()


def test_temporary_queue_is_removed(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscription = memory_transport.subscribe_temporary(Collector(), hint="replies")
    name = subscription.destination
    assert name in memory_broker.queue_names()
    memory_transport.send(name, "held")
    memory_transport.send(name, "waiting")
    assert memory_broker.wait_idle(0.2) is False
    memory_transport.unsubscribe(subscription)
    assert name not in memory_broker.queue_names()
    memory_transport.send(name, "too late")
    assert memory_broker.outstanding() == 0
    assert name not in memory_broker.queue_names()
    assert any(
        r.levelno == logging.WARNING and name in r.getMessage() for r in caplog.records
    )


def test_close_fails_its_transports(unique_name: Callable[..., str]) -> None:
    broker = MemoryBroker()
    transport = MemoryTransport(broker)
    transport.connect()
    subscription = transport.subscribe(unique_name(), Collector())
    assert broker.close(timeout=WAIT)
    assert transport.state is ConnectionState.FAILED
    assert not subscription.active
    with pytest.raises(DisconnectedError):
        transport.send(unique_name(), 1)
    with pytest.raises(DisconnectedError, match="closed"):
        transport.connect()
    transport.disconnect()
    assert transport.state is ConnectionState.DISCONNECTED
    assert broker.close() is True


def test_a_closed_default_broker_is_replaced() -> None:
    old = default_broker()
    old.close()
    assert default_broker() is not old
    assert MemoryTransport().broker is default_broker()


def test_delivery_limit_is_checked() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TransportError):
            MemoryBroker(delivery_limit=bad)  # type: ignore[arg-type]
    assert MemoryBroker(delivery_limit=1).delivery_limit == 1


def test_logging_handlers_may_use_the_broker(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    """The broker logs after releasing its lock, so a handler may call it back."""
    counts: list[int] = []

    class CountingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counts.append(memory_broker.outstanding(include_dead_letters=True))

    handler = CountingHandler(logging.ERROR)
    broker_logger = logging.getLogger("zocalo_core._memory._broker")
    broker_logger.addHandler(handler)
    try:
        queue = unique_name()
        memory_transport.send(queue, b"\xff")
        memory_transport.subscribe(queue, Collector())
        assert memory_broker.wait_idle(WAIT)
        deadline = time.monotonic() + WAIT
        while not counts and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        broker_logger.removeHandler(handler)
    assert counts == [1]


def test_a_handler_still_running_after_unsubscribe_is_outstanding(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    release, entered = threading.Event(), threading.Event()

    def block(message: Message) -> None:
        entered.set()
        release.wait(WAIT)

    subscription = memory_transport.subscribe(queue, block, acknowledgement=False)
    memory_transport.send(queue, "in the handler")
    assert entered.wait(WAIT)
    memory_transport.unsubscribe(subscription)
    try:
        assert memory_broker.outstanding() == 1
        assert not memory_broker.wait_idle(0.1)
    finally:
        release.set()
    assert memory_broker.wait_idle(WAIT)
