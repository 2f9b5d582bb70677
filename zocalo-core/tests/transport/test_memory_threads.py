"""The memory transport under threads, redelivery and dead-lettering."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable

from zocalo_core._memory import MemoryBroker, MemoryTransport
from zocalo_core.testing import Collector
from zocalo_core.transport import DEATHS_HEADER, Message

WAIT = 10.0


def test_calls_from_handlers_nest(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    """Each handler subscribes the next queue and sends to it, three levels deep."""
    queues = [unique_name() for _ in range(4)]
    last = Collector(memory_transport, ack=True)

    def step(level: int) -> Callable[[Message], None]:
        def handle(message: Message) -> None:
            following = step(level + 1) if level + 1 < len(queues) - 1 else last
            memory_transport.subscribe(queues[level + 1], following)
            memory_transport.send(queues[level + 1], [*message.body, level])
            memory_transport.ack(message)

        return handle

    memory_transport.subscribe(queues[0], step(0))
    memory_transport.send(queues[0], [])
    assert last.wait_for(1, WAIT)[0].body == [0, 1, 2]
    assert memory_broker.wait_idle(WAIT)


def test_acks_from_a_worker_pool(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures: list[concurrent.futures.Future[None]] = []
        memory_transport.subscribe(
            queue,
            lambda message: futures.append(pool.submit(memory_transport.ack, message)),
            prefetch=10,
        )
        for number in range(200):
            memory_transport.send(queue, number)
        assert memory_broker.wait_idle(WAIT)
        _, pending = concurrent.futures.wait(futures, timeout=WAIT)
        assert not pending
    assert len(futures) == 200
    assert all(future.exception() is None for future in futures)


def test_many_messages_from_many_threads(
    memory_broker: MemoryBroker, unique_name: Callable[..., str]
) -> None:
    """4 senders, 3 consumers: every message handled once, every ack accepted once."""
    queue = unique_name()
    senders, per_sender = 4, 1000
    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    seen_lock = threading.Lock()
    errors: list[BaseException] = []
    consumers = [MemoryTransport(memory_broker) for _ in range(3)]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
    acks: list[concurrent.futures.Future[None]] = []

    def settle(transport: MemoryTransport, message: Message) -> None:
        try:
            transport.ack(message)
        except BaseException as exc:
            errors.append(exc)

    def handler_for(transport: MemoryTransport) -> Callable[[Message], None]:
        def handle(message: Message) -> None:
            with seen_lock:
                seen[tuple(message.body)] += 1  # type: ignore[index]
            if message.body[1] % 2:
                settle(transport, message)
            else:
                acks.append(pool.submit(settle, transport, message))

        return handle

    def send_all(sender_id: int) -> None:
        with MemoryTransport(memory_broker) as sender:
            for number in range(per_sender):
                sender.send(queue, [sender_id, number])

    try:
        for transport in consumers:
            transport.connect()
            transport.subscribe(queue, handler_for(transport), prefetch=10)
        threads = [threading.Thread(target=send_all, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()
        assert memory_broker.wait_idle(WAIT)
    finally:
        # Bounded first, so that the shutdown below joins only finished workers.
        _, pending = concurrent.futures.wait(list(acks), timeout=WAIT)
        pool.shutdown(wait=not pending, cancel_futures=True)
        for transport in consumers:
            transport.disconnect()
    assert errors == []
    assert len(seen) == senders * per_sender
    assert set(seen.values()) == {1}
    assert memory_broker.outstanding(include_dead_letters=True) == 0


def test_disconnect_returns_unacknowledged(
    memory_broker: MemoryBroker, unique_name: Callable[..., str]
) -> None:
    queue = unique_name()
    with MemoryTransport(memory_broker) as first:
        held = Collector()
        first.subscribe(queue, held, prefetch=3)
        for number in range(3):
            first.send(queue, number)
        held.wait_for(3, WAIT)
        assert memory_broker.outstanding(lambda m: m.state == "unacknowledged") == 3
    assert [m.delivery_count for m in memory_broker.peek(queue)] == [1, 1, 1]
    with MemoryTransport(memory_broker) as second:
        again = Collector(second, ack=True)
        second.subscribe(queue, again)
        messages = again.wait_for(3, WAIT)
    assert [m.body for m in messages] == [0, 1, 2]
    assert all(m.redelivered and m.delivery_attempt == 2 for m in messages)
    assert memory_broker.outstanding() == 0


def test_unsubscribe_does_not_wait_for_a_blocked_handler(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    release, entered = threading.Event(), threading.Event()

    def block(message: Message) -> None:
        entered.set()
        release.wait(WAIT)

    subscription = memory_transport.subscribe(queue, block)
    memory_transport.send(queue, "stuck")
    assert entered.wait(WAIT)
    started = time.monotonic()
    memory_transport.unsubscribe(subscription)
    assert time.monotonic() - started < 1.0
    other = Collector(memory_transport, ack=True)
    memory_transport.subscribe(queue, other)
    assert other.wait_for(1, WAIT)[0].delivery_attempt == 2
    release.set()


def test_handler_exception_is_a_nack(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    attempts: list[int] = []

    def fail(message: Message) -> None:
        attempts.append(message.delivery_attempt)
        raise ValueError(f"cannot handle {message.body}")

    memory_transport.subscribe(queue, fail)
    memory_transport.send(queue, "input", headers={"app": True})
    assert memory_broker.wait_idle(WAIT)
    assert attempts == [1, 2, 3, 4, 5]
    (dead,) = memory_broker.peek(f"dlq.{queue}")
    assert dead.headers["app"] is True
    (death,) = dead.headers[DEATHS_HEADER]  # type: ignore[misc]
    assert death["reason"] == "delivery-limit"
    assert death["attempts"] == 5
    assert death["error"] == "ValueError: cannot handle input"


def test_undecodable_body_is_dead_lettered_with_the_reason(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    handled = Collector(memory_transport, ack=True)
    memory_transport.subscribe(queue, handled)
    memory_transport.send(queue, b"{broken")
    assert memory_broker.wait_idle(WAIT)
    assert handled.messages == []
    (dead,) = memory_broker.peek(f"dlq.{queue}")
    assert dead.raw == b"{broken"
    (death,) = dead.headers[DEATHS_HEADER]  # type: ignore[misc]
    assert death["reason"] == "undecodable"
    assert "not UTF-8 JSON" in death["error"]


def test_two_deaths_make_a_history(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    queue = unique_name()
    subscription = memory_transport.subscribe(
        queue, lambda m: memory_transport.reject(m, "first")
    )
    memory_transport.send(queue, {"n": 1})
    assert memory_broker.wait_idle(WAIT)
    memory_transport.unsubscribe(subscription)
    dead = Collector(memory_transport, ack=True)
    dlq = memory_transport.subscribe(f"dlq.{queue}", dead, decode=False)
    (first,) = dead.wait_for(1, WAIT)
    memory_transport.unsubscribe(dlq)
    memory_transport.subscribe(queue, memory_transport.nack)
    memory_transport.send(queue, first.raw, headers=dict(first.headers))
    assert memory_broker.wait_idle(WAIT)
    (again,) = memory_broker.peek(f"dlq.{queue}")
    history = again.headers[DEATHS_HEADER]
    assert [d["reason"] for d in history] == ["rejected", "delivery-limit"]  # type: ignore[index,union-attr]
    assert [d["attempts"] for d in history] == [1, 5]  # type: ignore[index,union-attr]
