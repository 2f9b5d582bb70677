"""Conformance tests of delivery: ACK, REDEL, THREAD and PREFETCH."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from zocalo_core._errors import TransportError
from zocalo_core.testing._base import ConformanceBase, NameFactory, TransportFactory
from zocalo_core.testing._helpers import Collector, is_active, needs, wait_for_log
from zocalo_core.transport import Capability, Message, Transport


def _in_thread(action: Callable[[], object], timeout: float) -> None:
    """Run `action()` on a new thread and wait for it, boundedly; re-raise its error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, name="conformance worker")
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"the worker thread did not finish in {timeout} s"
    if errors:
        raise errors[0]


class AckRules(ConformanceBase):
    def test_ack_acked_not_again(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """ACK-1: an acked message is not delivered again, even after a reconnect."""
        queue = new_name()
        first = connect()
        collector = self.collect(first, queue)
        first.send(queue, "once")
        self.receive(collector)
        collector.assert_quiet(self.quiet_period)
        first.disconnect()
        later = self.collect(connect(), queue)
        later.assert_quiet(self.quiet_period, 0)

    def test_ack_later_from_a_thread(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """ACK-2: a handler may return without acking; any thread acks it later."""
        queue = new_name()
        transport = connect()
        collector = self.collect(transport, queue, ack=False)
        transport.send(queue, "batched")
        (message,) = self.receive(collector)
        _in_thread(lambda: transport.ack(message), self.delivery_timeout)
        transport.disconnect()
        later = self.collect(connect(), queue)
        later.assert_quiet(self.quiet_period, 0)

    def test_ack_auto_ack(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """ACK-3: without acknowledgement a delivery is the ack; settling raises."""
        queue = new_name()
        transport = connect()
        collector = self.collect(transport, queue, ack=False, acknowledgement=False)
        transport.send(queue, "auto")
        (message,) = self.receive(collector)
        for settle in (transport.ack, transport.nack):
            with pytest.raises(TransportError):
                settle(message)
        with pytest.raises(TransportError):
            transport.reject(message, "no acknowledgement here")
        transport.disconnect()
        later = self.collect(connect(), queue)
        later.assert_quiet(self.quiet_period, 0)

    def test_ack_settle_once(self, transport: Transport, new_name: NameFactory) -> None:
        """ACK-4: a message is settled once; a second ack, nack or reject raises."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(queue, "x")
        (message,) = self.receive(collector)
        with pytest.raises(TransportError):
            transport.ack(message)
        with pytest.raises(TransportError):
            transport.nack(message)
        with pytest.raises(TransportError):
            transport.reject(message, "again")
        collector.assert_quiet(self.quiet_period)

    def test_ack_settle_foreign_or_ended(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """ACK-5: settling another transport's or an ended subscription's message."""
        queue = new_name()
        transport, other = connect(), connect()
        collector = Collector()
        subscription = transport.subscribe(queue, collector)
        transport.send(queue, "x")
        (message,) = self.receive(collector)
        with pytest.raises(TransportError):
            other.ack(message)
        transport.unsubscribe(subscription)
        with pytest.raises(TransportError):
            transport.ack(message)
        again = self.collect(other, queue)
        assert self.receive(again)[0].body == "x"


class RedeliveryRules(ConformanceBase):
    def test_redel_nack_redelivers(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """REDEL-1: attempt 1 and not redelivered first; a nack: attempt + 1."""
        queue = new_name()
        attempts = min(3, self.delivery_limit)

        def nack_early(message: Message) -> None:
            if message.delivery_attempt < attempts:
                transport.nack(message)
            else:
                transport.ack(message)

        collector = Collector(react=nack_early)
        transport.subscribe(queue, collector)
        transport.send(queue, "again")
        messages = self.receive(collector, attempts)
        assert [m.delivery_attempt for m in messages] == list(range(1, attempts + 1))
        assert [m.redelivered for m in messages] == [False] + [True] * (attempts - 1)
        assert all(m.body == "again" for m in messages)
        collector.assert_quiet(self.quiet_period)

    def test_redel_handler_exception_nacks(
        self,
        transport: Transport,
        new_name: NameFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """REDEL-2: a handler that raises nacks, logged at ERROR with queue and id."""
        queue = new_name()

        def fail_first(message: Message) -> None:
            if message.delivery_attempt == 1:
                raise ValueError("first try fails")
            transport.ack(message)

        collector = Collector(react=fail_first)
        subscription = transport.subscribe(queue, collector)
        transport.send(queue, "retry me")
        first, second = self.receive(collector, 2)
        assert (first.delivery_attempt, second.delivery_attempt) == (1, 2)
        assert second.redelivered
        wait_for_log(
            caplog,
            logging.ERROR,
            queue,
            first.message_id,
            timeout=self.delivery_timeout,
        )
        assert is_active(subscription)
        assert transport.is_connected()
        transport.send(queue, "still subscribed")
        assert self.receive(collector, 3)[2].body == "still subscribed"

    @pytest.mark.parametrize("ending", ["unsubscribe", "disconnect"])
    def test_redel_returned_when_ended(
        self, connect: TransportFactory, new_name: NameFactory, ending: str
    ) -> None:
        """REDEL-3: unacked messages go back when the subscription ends."""
        queue = new_name()
        transport = connect()
        collector = Collector()
        subscription = transport.subscribe(queue, collector)
        transport.send(queue, "held")
        self.receive(collector)
        if ending == "unsubscribe":
            transport.unsubscribe(subscription)
        else:
            transport.disconnect()
        again = self.collect(connect(), queue)
        (message,) = self.receive(again)
        assert message.body == "held"
        assert message.redelivered
        assert message.delivery_attempt == 2

    def test_redel_auto_ack_exception_not_redelivered(
        self,
        transport: Transport,
        new_name: NameFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """REDEL-4: without acknowledgement a failing handler is logged, not retried."""
        queue = new_name()

        def fail(message: Message) -> None:
            raise ValueError("fails without acknowledgement")

        collector = Collector(react=fail)
        transport.subscribe(queue, collector, acknowledgement=False)
        transport.send(queue, "once only")
        (message,) = self.receive(collector)
        wait_for_log(
            caplog, logging.ERROR, message.message_id, timeout=self.delivery_timeout
        )
        collector.assert_quiet(self.quiet_period)


class ThreadRules(ConformanceBase):
    def test_thread_handler_thread(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """THREAD-1: handlers run on the transport's threads, not the caller's."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(queue, "x")
        self.receive(collector)
        assert collector.thread_ids[0] != threading.get_ident()

    def test_thread_calls_inside_handler(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """THREAD-2: send, subscribe, unsubscribe, ack and transactions in a handler."""
        queue, onward, extra = new_name(), new_name(), new_name()
        onward_collector = self.collect(transport, onward)
        extra_collector = Collector(transport, ack=True)
        spare = transport.subscribe(new_name(), Collector())
        errors: list[BaseException] = []
        done = threading.Event()

        def busy(message: Message) -> None:
            try:
                transport.send(onward, "sent from a handler")
                transport.subscribe(extra, extra_collector)
                transport.send(extra, "to a new subscription")
                transport.unsubscribe(spare)
                if self.has(Capability.TRANSACTIONS):
                    with transport.transaction(message.subscription) as transaction:
                        transport.send(
                            onward, "in a transaction", transaction=transaction
                        )
                        transport.ack(message, transaction=transaction)
                else:
                    transport.ack(message)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        transport.subscribe(queue, busy)
        transport.send(queue, "start")
        assert done.wait(self.delivery_timeout), "the handler did not finish in time"
        assert errors == []
        expected = 2 if self.has(Capability.TRANSACTIONS) else 1
        self.receive(onward_collector, expected)
        assert self.receive(extra_collector)[0].body == "to a new subscription"
        assert not is_active(spare)

    def test_thread_blocked_handler(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """THREAD-3: a blocked handler does not hold up another subscription."""
        blocked_queue, free_queue = new_name(), new_name()
        release = threading.Event()
        entered = threading.Event()

        def block(message: Message) -> None:
            entered.set()
            release.wait(self.delivery_timeout * 2)
            transport.ack(message)

        transport.subscribe(blocked_queue, block)
        free = self.collect(transport, free_queue)
        try:
            transport.send(blocked_queue, "blocks")
            assert entered.wait(self.delivery_timeout)
            transport.send(free_queue, "flows")
            assert self.receive(free)[0].body == "flows"
        finally:
            release.set()

    def test_thread_one_at_a_time(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """THREAD-4: one subscription's handler never runs concurrently with itself."""
        queue = new_name()
        lock = threading.Lock()
        running = [0]
        most = [0]

        def slow(message: Message) -> None:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
            transport.ack(message)

        collector = Collector(react=slow)
        transport.subscribe(queue, collector, prefetch=5)
        for number in range(10):
            transport.send(queue, number)
        self.receive(collector, 10)
        assert most[0] == 1

    def test_thread_unsubscribe_inside_handler(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """THREAD-5: unsubscribe from the subscription's own handler returns."""
        queue = new_name()
        returned = threading.Event()

        def leave(message: Message) -> None:
            transport.ack(message)
            transport.unsubscribe(message.subscription)
            returned.set()

        subscription = transport.subscribe(queue, leave)
        transport.send(queue, "leave")
        assert returned.wait(self.delivery_timeout), "unsubscribe did not return"
        assert not is_active(subscription)


class PrefetchRules(ConformanceBase):
    def test_prefetch_values(self, transport: Transport, new_name: NameFactory) -> None:
        """PREFETCH-1: prefetch is an int of at least 1; otherwise TransportError."""
        queue = new_name()
        for bad in (0, -1, 1.5, "2", True, None):
            with pytest.raises(TransportError):
                transport.subscribe(queue, Collector(), prefetch=bad)  # type: ignore[arg-type]

    @needs(Capability.PREFETCH)
    def test_prefetch_limits(self, transport: Transport, new_name: NameFactory) -> None:
        """PREFETCH-2: at most `prefetch` unacked; none without acknowledgement."""
        queue, unlimited = new_name(), new_name()
        collector = self.collect(transport, queue, ack=False, prefetch=3)
        for number in range(6):
            transport.send(queue, number)
        held = self.receive(collector, 3)
        collector.assert_quiet(self.quiet_period)
        transport.ack(held[0])
        self.receive(collector, 4)
        collector.assert_quiet(self.quiet_period)
        auto = self.collect(
            transport, unlimited, ack=False, acknowledgement=False, prefetch=1
        )
        for number in range(5):
            transport.send(unlimited, number)
        self.receive(auto, 5)
