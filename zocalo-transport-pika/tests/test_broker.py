"""Behaviour of the pika transport beyond the protocol page, on the real RabbitMQ."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from zocalo_core import MessageError, TransportError
from zocalo_core.testing import Collector
from zocalo_core.transport import Message, dead_letter_queue
from zocalo_transport_pika import PikaTransport
from zocalo_transport_pika._loop import Chain
from zocalo_transport_pika._session import Session

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]
RawGet = Callable[..., tuple[Any, Any, bytes]]

TYPED_HEADERS: dict[str, Any] = {
    "flag": True,
    "off": False,
    "count": -(2**40),
    "ratio": 0.25,
    "none": None,
    "text": "ü ☃",
    "nested": {"list": [1, 2.5, None, {"deep": [True]}], "empty": {}},
    "workflows-recipe": True,
}


def raw_channel() -> tuple[Any, Any]:
    credentials = pika.PlainCredentials("guest", "guest")
    parameters = pika.ConnectionParameters("127.0.0.1", 5672, "/", credentials)
    connection = pika.BlockingConnection(parameters)
    return connection, connection.channel()


def test_headers_keep_their_types(
    connected: Connect, names: Names, raw_get: RawGet
) -> None:
    """HEAD-1 over AMQP: floats, None, nesting survive; other clients see a mirror."""
    transport = connected()
    queue = names("headers")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    transport.send(queue, {"n": 1}, headers=TYPED_HEADERS)
    (message,) = collector.wait_for(1, 5)
    assert dict(message.headers) == TYPED_HEADERS
    for name, value in TYPED_HEADERS.items():
        assert type(message.headers[name]) is type(value)
    other = names("headers-seen-natively")
    transport.send(other, "x", headers=TYPED_HEADERS)
    _, properties, _ = raw_get(other)
    assert properties.headers["workflows-recipe"] is True
    assert properties.headers["count"] == -(2**40)
    assert "ratio" not in properties.headers


def test_message_of_another_client(connected: Connect, names: Names) -> None:
    """A plain AMQP message: its native headers are the application's headers."""
    transport = connected()
    queue = names("foreign")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    connection, channel = raw_channel()
    try:
        channel.basic_publish(
            "",
            queue,
            b'{"from": "workflows"}',
            pika.BasicProperties(headers={"workflows-recipe": True, "n": 3}),
        )
    finally:
        connection.close()
    (message,) = collector.wait_for(1, 5)
    assert message.body == {"from": "workflows"}
    assert dict(message.headers) == {"workflows-recipe": True, "n": 3}
    assert message.delivery_attempt == 1
    assert message.message_id


def test_unroutable_send_raises(
    connected: Connect, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send RabbitMQ cannot route raises at the sender; nothing is silently lost."""

    def declare_nothing(
        self: Session, queue: str, *, with_dead_letters: bool = True
    ) -> Chain[None]:
        return
        yield

    transport = connected()
    monkeypatch.setattr(Session, "ensure_queue", declare_nothing)
    with pytest.raises(TransportError, match="could not route"):
        transport.send(names("never-declared"), "lost?")
    transaction = transport.transaction_begin()
    transport.send(names("never-declared"), "lost?", transaction=transaction)
    with pytest.raises(TransportError, match="committed, but RabbitMQ could not route"):
        transport.transaction_commit(transaction)
    assert transport.is_connected()


def test_refused_send_raises(
    connected: Connect, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """A queue that refuses messages (reject-publish at its length limit) raises."""
    queue = names("full")
    connection, channel = raw_channel()
    try:
        arguments = {"x-max-length": 0, "x-overflow": "reject-publish"}
        channel.queue_declare(queue, durable=True, arguments=arguments)
    finally:
        connection.close()
    transport = connected()
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(TransportError, match="refused"),
    ):
        transport.send(queue, "does not fit")
    assert any("exists with other arguments" in r.getMessage() for r in caplog.records)


def test_temporary_destination_gone_warns(
    connected: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply to a temporary queue that has gone is dropped with a WARNING."""
    transport = connected()
    with caplog.at_level(logging.WARNING):
        transport.send("transient.nobody-listens.0123456789abcdef", "reply")
    assert any(
        r.levelno == logging.WARNING and "transient.nobody-listens" in r.getMessage()
        for r in caplog.records
    )


def test_many_threads_sending(connected: Connect, names: Names) -> None:
    """Concurrent sends share the confirm channel; every one is confirmed once."""
    sender, receiver = connected(), connected()
    queue = names("concurrent")
    collector = Collector(receiver, ack=True)
    receiver.subscribe(queue, collector, prefetch=50)
    errors: list[BaseException] = []

    def send_batch(batch: int) -> None:
        try:
            for number in range(50):
                sender.send(queue, [batch, number])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send_batch, args=(b,)) for b in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    messages = collector.wait_for(400, 15)
    assert sorted(tuple(m.body) for m in messages) == [
        (batch, number) for batch in range(8) for number in range(50)
    ]
    collector.assert_quiet(0.3)


def test_plain_ack_after_a_transaction_takes_effect(
    connected: Connect, names: Names
) -> None:
    """A channel in tx mode still acks at once outside a transaction."""
    transport = connected()
    queue, onward = names("txn-then-plain"), names("txn-output")
    collector = Collector(transport)
    transport.subscribe(queue, collector)
    transport.send(queue, "first")
    transport.send(queue, "second")
    (first,) = collector.wait_for(1, 5)
    with transport.transaction(first.subscription) as transaction:
        transport.send(onward, "output", transaction=transaction)
        transport.ack(first, transaction=transaction)
    second = collector.wait_for(2, 5)[1]
    transport.ack(second)
    transport.disconnect()
    other = connected()
    later = Collector(other, ack=True)
    other.subscribe(queue, later)
    later.assert_quiet(0.5, 0)


def test_long_handler_keeps_the_connection(connected: Connect, names: Names) -> None:
    """A handler running past 3 heartbeat intervals: still connected, acks fine."""
    transport = connected(heartbeat=2)
    queue = names("slow")
    finished = threading.Event()
    seen: list[Message] = []

    def slow(message: Message) -> None:
        seen.append(message)
        time.sleep(7)
        transport.ack(message)
        finished.set()

    transport.subscribe(queue, slow)
    transport.send(queue, "takes a while")
    assert finished.wait(15)
    assert transport.is_connected()
    assert [m.delivery_attempt for m in seen] == [1]
    transport.send(queue, "still working")
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.body for m in seen] == ["takes a while", "still working"]


def test_early_ack_reaches_the_broker_while_the_handler_works(
    connected: Connect, names: Names
) -> None:
    """An ack from the handler is not held back until the handler returns.

    With prefetch 2 and three messages, the third is delivered only once RabbitMQ
    has the first ack; the handler, still busy, sees the queue empty.
    """
    transport = connected()
    queue, onward = names("early-ack"), names("early-ack-onward")
    for body in ("first", "second", "third"):
        transport.send(queue, body)
    ready_after_ack: list[int] = []
    finished = threading.Event()
    connection, channel = raw_channel()

    def ready() -> int:
        return int(channel.queue_declare(queue, passive=True).method.message_count)

    def handler(message: Message) -> None:
        if message.body != "first":
            transport.ack(message)
            return
        transport.send(onward, "the handler's own send")
        transport.ack(message)
        deadline = time.monotonic() + 2
        while ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        ready_after_ack.append(ready())
        finished.set()

    try:
        transport.subscribe(queue, handler, prefetch=2)
        assert finished.wait(10)
    finally:
        connection.close()
    assert ready_after_ack == [0]


def test_disconnect_ends_the_threads(connected: Connect, names: Names) -> None:
    """Disconnecting stops every delivery thread (boundedly), also from a handler."""
    transport = connected()
    queues = [names("threads"), names("threads")]
    for queue in queues:
        transport.subscribe(queue, Collector())
    transport.subscribe_broadcast(names("threads-topic"), Collector())
    transport.disconnect()

    def delivery_threads() -> list[threading.Thread]:
        return [
            thread
            for thread in threading.enumerate()
            if any(queue in thread.name for queue in queues)
        ]

    deadline = time.monotonic() + 3
    while delivery_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert delivery_threads() == []


def test_queue_and_topic_deleted_behind_its_back(
    connected: Connect, names: Names, raw_get: RawGet
) -> None:
    """A queue or topic deleted since it was declared is declared again on use."""
    transport = connected()
    queue, topic = names("deleted-queue"), names("deleted-topic")
    transport.send(queue, "first")
    transport.broadcast(topic, "first")
    connection, channel = raw_channel()
    try:
        channel.queue_delete(queue)
        channel.exchange_delete(topic)
    finally:
        connection.close()
    collector = Collector()
    transport.subscribe_broadcast(topic, collector)
    transport.send(queue, "second")
    transport.broadcast(topic, "second")
    assert collector.wait_for(1, 5)[0].body == "second"
    _, _, body = raw_get(queue)
    assert body == b'"second"'


def test_a_queue_deleted_with_its_dead_letter_queue_gets_both_back(
    connected: Connect, names: Names, raw: Any
) -> None:
    transport = connected()
    queue = names("deleted-with-dlq")
    transport.send(queue, "first")
    channel = raw.channel()
    channel.queue_delete(queue)
    channel.queue_delete(dead_letter_queue(queue))
    collector = Collector(transport)
    transport.send(queue, "second")
    transport.subscribe(queue, collector)
    (message,) = collector.wait_for(1, 5)
    transport.reject(message, "a dead letter needs its queue")
    dead_letters = Collector(transport, ack=True)
    transport.subscribe(dead_letter_queue(queue), dead_letters, decode=False)
    (letter,) = dead_letters.wait_for(1, 5)
    assert letter.raw == b'"second"'


def test_oversized_headers_refused_at_send(connected: Connect, names: Names) -> None:
    """Headers too large for one AMQP frame raise at send, also in a transaction."""
    transport = connected()
    queue = names("big-headers")
    huge = {"blob": "x" * 130_000}
    with pytest.raises(MessageError, match="AMQP frame"):
        transport.send(queue, "x", headers=huge)
    transaction = transport.transaction_begin()
    with pytest.raises(MessageError, match="AMQP frame"):
        transport.send(queue, "x", headers=huge, transaction=transaction)
    transport.send(queue, "fits", transaction=transaction)
    transport.transaction_commit(transaction)
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    assert [m.body for m in collector.wait_for(1, 5)] == ["fits"]
    collector.assert_quiet(0.3)
    assert transport.is_connected()
