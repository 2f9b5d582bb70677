"""What the transport declares: check-only sites, classic queues, single consumers.

Queue arguments are read back by declaring the queue again from plain pika:
RabbitMQ refuses (406) a declaration whose arguments differ from the queue's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from zocalo_core import TransportError
from zocalo_core.testing import Collector, wait_until
from zocalo_core.transport import (
    Capability,
    ConnectionState,
    Message,
    dead_letter_queue,
)
from zocalo_transport_pika import PikaTransport

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]


# -- declare: false


def test_check_only_refuses_a_missing_queue(
    connected: Connect, names: Names, queue_exists: Any
) -> None:
    transport = connected(declare=False)
    queue = names("managed-missing")
    with pytest.raises(TransportError, match="managed elsewhere") as sending:
        transport.send(queue, "x")
    assert repr(queue) in str(sending.value)
    with pytest.raises(TransportError, match="managed elsewhere") as subscribing:
        transport.subscribe(queue, Collector())
    assert repr(queue) in str(subscribing.value)
    assert not queue_exists(queue)
    assert not queue_exists(dead_letter_queue(queue))


def test_check_only_needs_the_dead_letter_queue(
    connected: Connect, names: Names, raw: Any, queue_exists: Any
) -> None:
    queue = names("managed-no-dlq")
    raw.channel().queue_declare(queue, durable=True)
    transport = connected(declare=False)
    with pytest.raises(TransportError, match=dead_letter_queue(queue)):
        transport.subscribe(queue, Collector())
    assert not queue_exists(dead_letter_queue(queue))


def test_check_only_uses_existing_queues_as_they_are(
    connected: Connect,
    names: Names,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    declared_with: Any,
) -> None:
    queue = names("managed")
    channel = raw.channel()
    for name in (queue, dead_letter_queue(queue)):
        channel.queue_declare(name, durable=True)
    transport = connected(declare=False)
    collector = Collector(transport, ack=True)
    with caplog.at_level(logging.WARNING, "zocalo_transport_pika"):
        transport.subscribe(queue, collector)
        transport.send(queue, {"to": "a managed queue"})
        (message,) = collector.wait_for(1, 5)
    assert message.body == {"to": "a managed queue"}
    # A declaration would have met the site's arguments and warned about them.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert declared_with(queue, {})


# -- queue_type: classic


def test_classic_queues_round_trip(
    connected: Connect, names: Names, declared_with: Any
) -> None:
    transport = connected(queue_type="classic")
    queue = names("classic")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    transport.send(queue, {"classic": True})
    (message,) = collector.wait_for(1, 5)
    assert message.body == {"classic": True}
    assert message.delivery_attempt == 1
    dead_letters = dead_letter_queue(queue)
    assert declared_with(
        queue,
        {
            "x-queue-type": "classic",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letters,
            "x-max-priority": 1,
        },
    )
    assert not declared_with(queue, {"x-queue-type": "quorum"})


def test_classic_queues_have_two_priority_levels(
    connected: Connect, names: Names
) -> None:
    """5-9 go before 0-4; within a level the order of sending is kept."""
    transport = connected(queue_type="classic")
    assert Capability.PRIORITY in transport.capabilities
    queue = names("classic-priority")
    sent = [("low", 0), ("four", 4), ("five", 5), ("nine", 9), ("default", None)]
    for body, priority in sent:
        transport.send(queue, body, priority=priority)
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector, prefetch=1)
    bodies = [message.body for message in collector.wait_for(5, 5)]
    assert bodies == ["five", "nine", "low", "four", "default"]


def test_quorum_queues_do_not_claim_priorities(connected: Connect) -> None:
    """RabbitMQ 3.10's quorum queues ignore priorities, so the capability is off."""
    assert Capability.PRIORITY not in connected().capabilities


def test_classic_queues_count_their_consumers_nacks(
    connected: Connect, names: Names
) -> None:
    """The transport's own count: nacked five times, the message is dead-lettered."""
    transport = connected(queue_type="classic")
    queue = names("classic-limit")
    attempts: list[int] = []

    def refuse(message: Message) -> None:
        attempts.append(message.delivery_attempt)
        transport.nack(message)

    transport.subscribe(queue, Collector(react=refuse))
    dead = Collector(transport, ack=True)
    transport.subscribe(dead_letter_queue(queue), dead)
    transport.send(queue, "poison")
    (letter,) = dead.wait_for(1, 10)
    assert attempts == [1, 2, 3, 4, 5]
    assert letter.raw == b'"poison"'


# -- single_active_consumer


def test_single_active_consumer_hands_over(
    connected: Connect,
    names: Names,
    broker_closes: Callable[[str], None],
    declared_with: Any,
) -> None:
    queue = names("single")
    first_name = f"zocalo-test-sac-{uuid.uuid4().hex[:12]}"
    first = connected(
        single_active_consumer=[queue],
        connection_name=first_name,
        reconnect_attempts=0,
    )
    second = connected(single_active_consumer=f"{queue}, other")
    first_got = Collector(first, ack=True)
    second_got = Collector(second, ack=True)
    first.subscribe(queue, first_got, prefetch=10)
    second.subscribe(queue, second_got, prefetch=10)
    for number in range(4):
        first.send(queue, number)
    first_got.wait_for(4, 5)
    assert second_got.bodies == []
    broker_closes(first_name)
    assert wait_until(lambda: first.state is ConnectionState.FAILED, 10)
    for number in range(4, 8):
        second.send(queue, number)
    second_got.wait_for(4, 10)
    assert sorted(second_got.bodies) == [4, 5, 6, 7]  # type: ignore[type-var]
    assert first_got.bodies == [0, 1, 2, 3]
    assert declared_with(
        queue,
        {
            "x-queue-type": "quorum",
            "x-delivery-limit": 4,
            "x-single-active-consumer": True,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue(queue),
        },
    )
