"""Conformance tests of broadcasts, temporary queues and message options:
BCAST, TEMP, DELAY, EXPIRE, PRIO and EXCH."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from zocalo_core._errors import MessageError, TransportError
from zocalo_core.testing._base import (
    ConformanceBase,
    ExchangeBinder,
    NameFactory,
    TransportFactory,
)
from zocalo_core.testing._helpers import Collector, needs, wait_for_log
from zocalo_core.transport import Capability, Message, SubscriptionKind, Transport

# Clocks of brokers and of this process may round a delay down by a few milliseconds.
_CLOCK_SLACK = 0.05


@needs(Capability.BROADCAST)
class BroadcastRules(ConformanceBase):
    def test_bcast_every_subscriber(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """BCAST-1: every current subscriber of the topic gets one copy of each."""
        topic = new_name("topic")
        first, second, sender = connect(), connect(), connect()
        collectors = [Collector(), Collector()]
        first.subscribe_broadcast(topic, collectors[0])
        second.subscribe_broadcast(topic, collectors[1])
        for number in range(3):
            sender.broadcast(topic, number, headers={"n": number})
        for collector in collectors:
            messages = self.receive(collector, 3)
            assert sorted(int(m.body) for m in messages) == [0, 1, 2]
            assert all(m.headers["n"] == m.body for m in messages)
            assert all(m.destination == topic for m in messages)
            collector.assert_quiet(self.quiet_period / 2)

    def test_bcast_not_kept(self, transport: Transport, new_name: NameFactory) -> None:
        """BCAST-2: a broadcast is not kept for later subscribers."""
        topic = new_name("topic")
        transport.broadcast(topic, "before")
        collector = Collector()
        transport.subscribe_broadcast(topic, collector)
        collector.assert_quiet(self.quiet_period, 0)
        transport.broadcast(topic, "after")
        assert [m.body for m in self.receive(collector)] == ["after"]
        collector.assert_quiet(self.quiet_period)

    def test_bcast_no_acknowledgement(
        self,
        transport: Transport,
        new_name: NameFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """BCAST-3: settling a broadcast raises; a handler exception is logged."""
        topic = new_name("topic")

        def fail_on_first(message: Message) -> None:
            if message.body == "first":
                raise ValueError("broadcast handler fails")

        collector = Collector(react=fail_on_first)
        subscription = transport.subscribe_broadcast(topic, collector)
        assert subscription.kind is SubscriptionKind.BROADCAST
        assert not subscription.acknowledgement
        transport.broadcast(topic, "first")
        (message,) = self.receive(collector)
        wait_for_log(
            caplog, logging.ERROR, message.message_id, timeout=self.delivery_timeout
        )
        for settle in (transport.ack, transport.nack):
            with pytest.raises(TransportError):
                settle(message)
        with pytest.raises(TransportError):
            transport.reject(message, "cannot")
        transport.broadcast(topic, "second")
        assert self.receive(collector, 2)[1].body == "second"

    def test_bcast_topics_and_queues_apart(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BCAST-4: a topic and a queue of one name do not see each other's messages."""
        name = new_name("shared")
        queue_collector = self.collect(transport, name)
        topic_collector = Collector()
        transport.subscribe_broadcast(name, topic_collector)
        transport.send(name, "to the queue")
        transport.broadcast(name, "to the topic")
        assert self.receive(queue_collector)[0].body == "to the queue"
        assert self.receive(topic_collector)[0].body == "to the topic"
        queue_collector.assert_quiet(self.quiet_period)
        topic_collector.assert_quiet(self.quiet_period / 2)

    def test_bcast_unsubscribe(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BCAST-5: after unsubscribe a broadcast subscription receives nothing."""
        topic = new_name("topic")
        collector = Collector()
        subscription = transport.subscribe_broadcast(topic, collector)
        transport.unsubscribe(subscription)
        transport.broadcast(topic, "unheard")
        collector.assert_quiet(self.quiet_period, 0)

    def test_bcast_undecodable_dropped(
        self,
        transport: Transport,
        new_name: NameFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """BCAST-6: an undecodable broadcast is dropped and logged with the topic."""
        topic = new_name("topic")
        collector = Collector()
        transport.subscribe_broadcast(topic, collector)
        transport.broadcast(topic, b"\xff not json")
        transport.broadcast(topic, "fine")
        assert [m.body for m in self.receive(collector)] == ["fine"]
        wait_for_log(caplog, logging.ERROR, topic, timeout=self.delivery_timeout)
        collector.assert_quiet(self.quiet_period)


@needs(Capability.TEMPORARY_QUEUES)
class TemporaryQueueRules(ConformanceBase):
    def test_temp_named_and_reachable(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """TEMP-1: a new name each time, with the hint; anyone can send to it."""
        transport, sender = connect(), connect()
        hint = new_name("reply")
        collector = Collector()
        first = transport.subscribe_temporary(collector, hint=hint)
        second = transport.subscribe_temporary(Collector())
        assert first.kind is SubscriptionKind.TEMPORARY
        assert hint in first.destination
        assert first.destination != second.destination
        sender.send(first.destination, "reply", headers={"n": 1})
        (message,) = self.receive(collector)
        assert (message.body, dict(message.headers)) == ("reply", {"n": 1})
        assert message.destination == first.destination
        transport.nack(message)
        again = self.receive(collector, 2)[1]
        assert again.delivery_attempt == 2
        transport.ack(again)
        collector.assert_quiet(self.quiet_period)

    def test_temp_removed_with_subscription(
        self,
        connect: TransportFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """TEMP-2: the queue goes with its subscription, with what is in it."""
        transport = connect()
        collector = Collector()
        subscription = transport.subscribe_temporary(collector, prefetch=1)
        name = subscription.destination
        transport.send(name, "held")
        transport.send(name, "waiting")
        self.receive(collector)
        transport.unsubscribe(subscription)
        transport.send(name, "too late")
        wait_for_log(caplog, logging.WARNING, name, timeout=self.delivery_timeout)
        later = Collector(transport, ack=True)
        subscribed_again = transport.subscribe(name, later)
        later.assert_quiet(self.quiet_period, 0)
        # Unsubscribed first: a consumer of a queue deleted under it may declare it
        # again on a shared broker.
        transport.unsubscribe(subscribed_again)
        self.cleanup_queues([name])


@needs(Capability.DELAY)
class DelayRules(ConformanceBase):
    delay = 1.0

    def check_delayed(self, collector: Collector, sent_at: float) -> None:
        """Arrived no earlier than the delay, and within the margin after it."""
        self.receive(collector)
        arrived = time.monotonic()
        assert arrived - sent_at >= self.delay - _CLOCK_SLACK
        assert arrived - sent_at <= self.delay + self.delay_margin

    def test_delay_delayed_send(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """DELAY-1: not delivered before the delay, and soon after it."""
        queue = new_name()
        delayed = Collector(transport, ack=True)
        arrivals: list[float] = []
        delayed.react = lambda message: arrivals.append(time.monotonic())
        transport.subscribe(queue, delayed)
        sent_at = time.monotonic()
        transport.send(queue, "later", delay=self.delay)
        transport.send(queue, "now")
        messages = self.receive(delayed, 2)
        assert [m.body for m in messages] == ["now", "later"]
        assert arrivals[1] - sent_at >= self.delay - _CLOCK_SLACK
        assert arrivals[1] - sent_at <= self.delay + self.delay_margin

    @needs(Capability.BROADCAST)
    def test_delay_delayed_broadcast(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """DELAY-2: a delayed broadcast reaches the subscribers when it is due."""
        topic = new_name("topic")
        collector = Collector()
        transport.subscribe_broadcast(topic, collector)
        sent_at = time.monotonic()
        transport.broadcast(topic, "later", delay=self.delay)
        self.check_delayed(collector, sent_at)

    def test_delay_values(self, transport: Transport, new_name: NameFactory) -> None:
        """DELAY-3: delay is None or a finite number >= 0; 0 is no delay."""
        queue = new_name()
        for bad in (-1, float("nan"), float("inf"), "1", True):
            with pytest.raises(MessageError):
                transport.send(queue, "x", delay=bad)  # type: ignore[arg-type]
        collector = self.collect(transport, queue)
        sent_at = time.monotonic()
        transport.send(queue, "no delay", delay=0)
        transport.send(queue, "none", delay=None)
        self.receive(collector, 2)
        assert time.monotonic() - sent_at < self.delay

    @needs(Capability.TRANSACTIONS)
    def test_delay_counts_from_commit(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """DELAY-3: in a transaction the delay counts from the commit."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transaction = transport.transaction_begin()
        transport.send(queue, "later", delay=self.delay, transaction=transaction)
        time.sleep(self.delay / 2)
        committed_at = time.monotonic()
        transport.transaction_commit(transaction)
        self.check_delayed(collector, committed_at)


@needs(Capability.EXPIRATION)
class ExpirationRules(ConformanceBase):
    expiration = 0.3

    def test_expire_expired_dropped(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """EXPIRE-1: not delivered in time: dropped, and not dead-lettered."""
        queue = new_name()
        transport = connect()
        transport.send(queue, "stale", expiration=self.expiration)
        time.sleep(self.expiration + self.quiet_period)
        transport.send(queue, "marker")
        collector = self.collect(transport, queue)
        assert [m.body for m in self.receive(collector)] == ["marker"]
        collector.assert_quiet(self.quiet_period)
        if self.has(Capability.DEAD_LETTER):
            self.assert_no_dead_letters(transport, queue)

    def test_expire_fresh_delivered(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """EXPIRE-2: a message delivered before it expires arrives normally."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(queue, "fresh", expiration=60)
        assert self.receive(collector)[0].body == "fresh"

    @needs(Capability.DELAY)
    def test_expire_counts_from_send(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """EXPIRE-3: expiration counts from the send, not from the end of a delay."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(
            queue, "never", delay=self.expiration * 2, expiration=self.expiration
        )
        collector.assert_quiet(self.expiration * 2 + self.quiet_period, 0)

    def test_expire_expires_after_return(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """EXPIRE-4: a message back in its queue after it expired is dropped."""
        queue = new_name()
        released = threading.Event()

        def hold_then_nack(message: Message) -> None:
            released.wait(self.expiration * 2)
            transport.nack(message)

        collector = Collector(react=hold_then_nack)
        transport.subscribe(queue, collector)
        transport.send(queue, "expires while held", expiration=self.expiration)
        self.receive(collector)
        collector.assert_quiet(self.expiration * 2 + self.quiet_period, 1)

    def test_expire_expiration_values(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """EXPIRE-5: expiration is None or a finite number of seconds above 0."""
        queue = new_name()
        for bad in (0, -1, float("nan"), float("inf"), "1", True):
            with pytest.raises(MessageError):
                transport.send(queue, "x", expiration=bad)  # type: ignore[arg-type]


@needs(Capability.PRIORITY)
class PriorityRules(ConformanceBase):
    def test_prio_higher_first(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """PRIO-1: a waiting 5-9 message goes before a waiting 0-4 message."""
        queue = new_name()
        for number in range(3):
            transport.send(queue, f"low {number}", priority=2)
        transport.send(queue, "default")
        transport.send(queue, "high", priority=7)
        collector = self.collect(transport, queue, prefetch=1)
        bodies = [m.body for m in self.receive(collector, 5)]
        assert bodies[0] == "high"
        # The default (4) may share the lows' level or sit above it (PRIO-1).
        assert [body for body in bodies if body != "default"][1:] == [
            "low 0",
            "low 1",
            "low 2",
        ]

    def test_prio_priority_values(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """PRIO-2: priority is None or an int from 0 to 9."""
        queue = new_name()
        for bad in (-1, 10, 1.5, "5", True):
            with pytest.raises(MessageError):
                transport.send(queue, "x", priority=bad)  # type: ignore[arg-type]
        collector = self.collect(transport, queue)
        transport.send(queue, "lowest", priority=0)
        transport.send(queue, "highest", priority=9)
        self.receive(collector, 2)


@needs(Capability.EXCHANGES)
class ExchangeRules(ConformanceBase):
    def test_exch_routes_through_exchange(
        self,
        transport: Transport,
        new_name: NameFactory,
        bind_exchange: ExchangeBinder,
    ) -> None:
        """EXCH-1: a send through an exchange reaches the queues bound with its key,
        not the queue named like the key."""
        exchange, key, first, second = (
            new_name("exchange"),
            new_name("key"),
            new_name(),
            new_name(),
        )
        named_like_key = self.collect(transport, key)
        collectors = [self.collect(transport, first), self.collect(transport, second)]
        bind_exchange(exchange, key, first)
        bind_exchange(exchange, key, second)
        transport.send(key, {"n": 1}, headers={"step": 2}, exchange=exchange)
        for collector, queue in zip(collectors, (first, second), strict=True):
            (message,) = self.receive(collector)
            assert message.body == {"n": 1}
            assert message.headers["step"] == 2
            assert message.destination == queue
        named_like_key.assert_quiet(self.quiet_period, 0)
        # No exchange, or "", is the queue itself.
        transport.send(key, "direct", exchange="")
        transport.send(key, "direct too", exchange=None)
        assert [m.body for m in self.receive(named_like_key, 2)] == [
            "direct",
            "direct too",
        ]

    def test_exch_unroutable_raises(
        self,
        transport: Transport,
        new_name: NameFactory,
        bind_exchange: ExchangeBinder,
    ) -> None:
        """EXCH-2: through a missing exchange, or one that routes the key nowhere,
        a send raises at the sender; the transport goes on working."""
        exchange, key, queue = new_name("exchange"), new_name("key"), new_name()
        collector = self.collect(transport, queue)
        with pytest.raises(TransportError):
            transport.send(key, "nowhere", exchange=new_name("exchange"))
        bind_exchange(exchange, key, queue)
        with pytest.raises(TransportError):
            transport.send(new_name("key"), "unbound key", exchange=exchange)
        transport.send(key, "routed", exchange=exchange)
        assert [m.body for m in self.receive(collector)] == ["routed"]
        collector.assert_quiet(self.quiet_period)

    def test_exch_values(self, transport: Transport, new_name: NameFactory) -> None:
        """EXCH-3: the exchange is None, "" or a valid name, and has no delay."""
        key = new_name("key")
        for bad in (" ", "a b", 5, "x" * 300):
            with pytest.raises(TransportError):
                transport.send(key, "x", exchange=bad)  # type: ignore[arg-type]
        if self.has(Capability.DELAY):
            with pytest.raises(MessageError):
                transport.send(key, "x", exchange=new_name("exchange"), delay=1)

    @needs(Capability.TRANSACTIONS)
    def test_exch_in_transaction(
        self,
        transport: Transport,
        new_name: NameFactory,
        bind_exchange: ExchangeBinder,
    ) -> None:
        """EXCH-4: in a transaction a send through an exchange goes at the commit."""
        exchange, key, queue = new_name("exchange"), new_name("key"), new_name()
        collector = self.collect(transport, queue)
        bind_exchange(exchange, key, queue)
        aborted = transport.transaction_begin()
        transport.send(key, "aborted", exchange=exchange, transaction=aborted)
        transport.transaction_abort(aborted)
        committed = transport.transaction_begin()
        transport.send(key, "committed", exchange=exchange, transaction=committed)
        collector.assert_quiet(self.quiet_period, 0)
        transport.transaction_commit(committed)
        assert [m.body for m in self.receive(collector)] == ["committed"]
        collector.assert_quiet(self.quiet_period)
