"""Conformance tests of dead letters and the delivery limit: DLQ and LIMIT."""

from __future__ import annotations

import datetime
import itertools
import json
from typing import Any

import pytest

from zocalo_core._errors import TransportError
from zocalo_core.testing._base import ConformanceBase, NameFactory, TransportFactory
from zocalo_core.testing._helpers import Collector, needs
from zocalo_core.transport import (
    DEATHS_HEADER,
    Capability,
    Message,
    Transport,
)


def deaths(message: Message) -> list[dict[str, Any]]:
    """The death entries of a dead letter, checked to be a list of dicts."""
    history = message.headers.get(DEATHS_HEADER)
    assert isinstance(history, list), f"{DEATHS_HEADER} is not a list: {history!r}"
    assert all(isinstance(entry, dict) for entry in history)
    return history  # type: ignore[return-value]


def check_death(entry: dict[str, Any], queue: str, reason: str, attempts: int) -> None:
    """The entry has the keys of the protocol page with these values."""
    assert set(entry) == {"queue", "reason", "error", "attempts", "time"}
    assert entry["queue"] == queue
    assert entry["reason"] == reason
    assert isinstance(entry["error"], str)
    assert entry["error"]
    assert entry["attempts"] == attempts
    when = datetime.datetime.fromisoformat(entry["time"])
    assert when.utcoffset() == datetime.timedelta(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 300


@needs(Capability.DEAD_LETTER)
class DeadLetterRules(ConformanceBase):
    def test_dlq_reject(self, transport: Transport, new_name: NameFactory) -> None:
        """DLQ-1: reject dead-letters at once, raw body and headers kept, one death."""
        queue = new_name()
        collector = Collector(
            react=lambda message: transport.reject(message, "malformed input")
        )
        transport.subscribe(queue, collector)
        transport.send(queue, {"payload": [1, 2]}, headers={"app": "kept", "n": 1})
        (original,) = self.receive(collector)
        (dead,) = self.dead_letters(transport, queue)
        assert dead.raw == original.raw
        assert dead.headers["app"] == "kept"
        assert dead.headers["n"] == 1
        (entry,) = deaths(dead)
        check_death(entry, queue, "rejected", 1)
        assert entry["error"] == "malformed input"
        collector.assert_quiet(self.quiet_period)

    def test_dlq_reject_needs_reason(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """DLQ-1: the reason is a non-empty string, else TransportError."""
        queue = new_name()
        collector = self.collect(transport, queue, ack=False)
        transport.send(queue, "x")
        (message,) = self.receive(collector)
        for reason in ("", "   ", None, 5):
            with pytest.raises(TransportError):
                transport.reject(message, reason)  # type: ignore[arg-type]
        transport.ack(message)

    @pytest.mark.parametrize("acknowledgement", [True, False])
    def test_dlq_undecodable(
        self, transport: Transport, new_name: NameFactory, acknowledgement: bool
    ) -> None:
        """DLQ-2: an undecodable body is dead-lettered at once, handler not called."""
        queue = new_name()
        collector = self.collect(
            transport, queue, ack=acknowledgement, acknowledgement=acknowledgement
        )
        transport.send(queue, b"\xff not json", headers={"app": 1})
        (dead,) = self.dead_letters(transport, queue)
        assert dead.raw == b"\xff not json"
        assert dead.headers["app"] == 1
        (entry,) = deaths(dead)
        check_death(entry, queue, "undecodable", 1)
        collector.assert_quiet(self.quiet_period, 0)

    def test_dlq_history(self, transport: Transport, new_name: NameFactory) -> None:
        """DLQ-3: a re-injected dead letter that dies again has two entries."""
        queue = new_name()
        numbers = itertools.count()
        collector = Collector(
            react=lambda message: transport.reject(message, f"death {next(numbers)}")
        )
        transport.subscribe(queue, collector)
        transport.send(queue, {"n": 1}, headers={"app": "kept"})
        dead_collector = self.collect(transport, f"dlq.{queue}", decode=False)
        (first_dead,) = self.receive(dead_collector)
        transport.send(queue, first_dead.raw, headers=dict(first_dead.headers))
        second_dead = self.receive(dead_collector, 2)[1]
        assert second_dead.raw == first_dead.raw
        assert second_dead.headers["app"] == "kept"
        older, newer = deaths(second_dead)
        check_death(older, queue, "rejected", 1)
        check_death(newer, queue, "rejected", 1)
        assert (older["error"], newer["error"]) == ("death 0", "death 1")
        assert older["time"] <= newer["time"]

    def test_dlq_dead_letter_queue_is_a_queue(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """DLQ-4: dead letters are read, and acked, by subscribing to `dlq.<queue>`."""
        queue = new_name()
        transport = connect()
        transport.subscribe(queue, Collector(react=lambda m: transport.reject(m, "no")))
        transport.send(queue, "doomed")
        (dead,) = self.dead_letters(transport, queue)
        assert dead.destination == f"dlq.{queue}"
        assert json.loads(dead.raw) == "doomed"
        transport.disconnect()
        self.assert_no_dead_letters(connect(), queue)


@needs(Capability.DELIVERY_LIMIT, Capability.DEAD_LETTER)
class DeliveryLimitRules(ConformanceBase):
    def test_limit_nack_at_limit(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """LIMIT-1: delivered at most `delivery_limit` times, then dead-lettered."""
        queue = new_name()
        collector = Collector(react=transport.nack)
        transport.subscribe(queue, collector)
        transport.send(queue, "nacked always")
        (dead,) = self.dead_letters(transport, queue)
        messages = self.receive(collector, self.delivery_limit)
        collector.assert_quiet(self.quiet_period, self.delivery_limit)
        expected = list(range(1, self.delivery_limit + 1))
        assert [m.delivery_attempt for m in messages] == expected
        (entry,) = deaths(dead)
        check_death(entry, queue, "delivery-limit", self.delivery_limit)

    def test_limit_exception_at_limit(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """LIMIT-2: a handler exception on the last delivery dead-letters, with it."""

        def fail(message: Message) -> None:
            raise ValueError(f"bad input {message.body}")

        queue = new_name()
        collector = Collector(react=fail)
        transport.subscribe(queue, collector)
        transport.send(queue, 42)
        (dead,) = self.dead_letters(transport, queue)
        (entry,) = deaths(dead)
        check_death(entry, queue, "delivery-limit", self.delivery_limit)
        assert "ValueError" in entry["error"]
        assert "bad input 42" in entry["error"]
        collector.assert_quiet(self.quiet_period, self.delivery_limit)

    def lose_consumer_at_last_delivery(
        self, connect: TransportFactory, queue: str
    ) -> None:
        """Send one message to `queue`, nack it up to its last allowed delivery, and
        disconnect the consumer holding that one (the case of LIMIT-3)."""
        transport = connect()

        def nack_until_last(message: Message) -> None:
            if message.delivery_attempt < self.delivery_limit:
                transport.nack(message)

        collector = Collector(react=nack_until_last)
        transport.subscribe(queue, collector)
        transport.send(queue, "held at the end")
        last = self.receive(collector, self.delivery_limit)[-1]
        assert last.delivery_attempt == self.delivery_limit
        transport.disconnect()

    def test_limit_consumer_lost_at_limit(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """LIMIT-3: a consumer lost holding the last allowed delivery dead-letters."""
        queue = new_name()
        self.lose_consumer_at_last_delivery(connect, queue)
        (dead,) = self.dead_letters(connect(), queue)
        (entry,) = deaths(dead)
        check_death(entry, queue, "delivery-limit", self.delivery_limit)
