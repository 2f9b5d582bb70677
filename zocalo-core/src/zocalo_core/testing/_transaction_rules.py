"""Conformance tests of transactions: TXN."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from zocalo_core._errors import TransportError
from zocalo_core.testing._base import ConformanceBase, NameFactory, TransportFactory
from zocalo_core.testing._dead_letter_rules import deaths
from zocalo_core.testing._helpers import Collector, needs, transaction_state
from zocalo_core.transport import (
    Capability,
    Message,
    Transaction,
    TransactionState,
    Transport,
)


@needs(Capability.TRANSACTIONS)
class TransactionRules(ConformanceBase):
    def held_message(
        self, transport: Transport, queue: str, body: object = "input"
    ) -> tuple[Collector, Message]:
        """Subscribe without acking, send one message, and return it once delivered."""
        collector = Collector()
        transport.subscribe(queue, collector)
        transport.send(queue, body)
        return collector, self.receive(collector)[0]

    def test_txn_sends_at_commit(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-1: sends in a transaction arrive after commit; none after abort."""
        queue = new_name()
        collector = self.collect(transport, queue)
        kept = transport.transaction_begin()
        dropped = transport.transaction_begin()
        transport.send(queue, "kept", transaction=kept)
        transport.send(queue, "dropped", transaction=dropped)
        if self.has(Capability.BROADCAST):
            transport.broadcast(new_name("topic"), "dropped", transaction=dropped)
        collector.assert_quiet(self.quiet_period, 0)
        transport.transaction_abort(dropped)
        transport.transaction_commit(kept)
        assert [m.body for m in self.receive(collector)] == ["kept"]
        collector.assert_quiet(self.quiet_period)
        assert transaction_state(kept) is TransactionState.COMMITTED
        assert transaction_state(dropped) is TransactionState.ABORTED

    def test_txn_ack_at_commit(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """TXN-2: an ack counts at commit; after abort the message is still held."""
        queue = new_name()
        transport = connect()
        _, message = self.held_message(transport, queue)
        transaction = transport.transaction_begin(message.subscription)
        transport.ack(message, transaction=transaction)
        with pytest.raises(TransportError):
            transport.ack(message)
        transport.transaction_abort(transaction)
        transport.disconnect()
        second = connect()
        again = self.receive(self.collect(second, queue, ack=False))[0]
        assert again.redelivered
        transaction = second.transaction_begin(again.subscription)
        second.ack(again, transaction=transaction)
        second.transaction_commit(transaction)
        second.disconnect()
        self.collect(connect(), queue).assert_quiet(self.quiet_period, 0)

    def test_txn_ack_again_after_abort(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-2: after an abort the message can be acked again."""
        queue = new_name()
        collector, message = self.held_message(transport, queue)
        transaction = transport.transaction_begin(message.subscription)
        transport.ack(message, transaction=transaction)
        transport.transaction_abort(transaction)
        transport.ack(message)
        collector.assert_quiet(self.quiet_period)

    def test_txn_nack_and_reject_at_commit(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-3: nack and reject in a transaction count at commit, not on abort."""
        queue = new_name()
        collector, message = self.held_message(transport, queue)
        for outcome in ("nack", "reject"):
            transaction = transport.transaction_begin(message.subscription)
            if outcome == "reject":
                transport.reject(message, "aborted", transaction=transaction)
            else:
                transport.nack(message, transaction=transaction)
            transport.transaction_abort(transaction)
        collector.assert_quiet(self.quiet_period, 1)
        transaction = transport.transaction_begin(message.subscription)
        transport.nack(message, transaction=transaction)
        transport.transaction_commit(transaction)
        again = self.receive(collector, 2)[1]
        assert again.delivery_attempt == 2
        transaction = transport.transaction_begin(again.subscription)
        transport.reject(again, "committed", transaction=transaction)
        if self.has(Capability.DEAD_LETTER):
            self.assert_no_dead_letters(transport, queue)
        transport.transaction_commit(transaction)
        if self.has(Capability.DEAD_LETTER):
            (dead,) = self.dead_letters(transport, queue)
            assert deaths(dead)[-1]["error"] == "committed"

    @pytest.mark.parametrize("outcome", ["commit", "abort"])
    def test_txn_together(
        self, connect: TransportFactory, new_name: NameFactory, outcome: str
    ) -> None:
        """TXN-4: a handler's output and the ack of its input take effect together."""
        queue, onward = new_name(), new_name()
        transport = connect()
        downstream = self.collect(connect(), onward)
        checked = threading.Event()
        seen_early: list[int] = []

        def service(message: Message) -> None:
            if message.delivery_attempt > 1:
                transport.ack(message)
                return
            with transport.transaction(message.subscription) as transaction:
                transport.send(onward, "result", transaction=transaction)
                transport.ack(message, transaction=transaction)
                # Not assert_quiet: a test failure raised here would end in the
                # transport's handler, so record what was seen instead.
                threading.Event().wait(self.quiet_period)
                seen_early.append(len(downstream.messages))
                checked.set()
                if outcome == "abort":
                    raise ValueError("the service fails after its work")

        inputs = Collector(react=service)
        transport.subscribe(queue, inputs)
        transport.send(queue, "input")
        assert checked.wait(self.delivery_timeout + self.quiet_period)
        assert seen_early == [0]
        if outcome == "commit":
            assert self.receive(downstream)[0].body == "result"
            transport.disconnect()
            self.collect(connect(), queue).assert_quiet(self.quiet_period, 0)
        else:
            assert self.receive(inputs, 2)[1].delivery_attempt == 2
            downstream.assert_quiet(self.quiet_period, 0)

    def test_txn_bound_to_subscription(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-5: settle only messages of the bound subscription; none unbound."""
        first_queue, second_queue = new_name(), new_name()
        _, first = self.held_message(transport, first_queue)
        _, second = self.held_message(transport, second_queue)
        bound = transport.transaction_begin(first.subscription)
        with pytest.raises(TransportError):
            transport.ack(second, transaction=bound)
        unbound = transport.transaction_begin()
        with pytest.raises(TransportError):
            transport.ack(first, transaction=unbound)
        transport.send(second_queue, "sends are fine", transaction=unbound)
        transport.transaction_commit(unbound)
        transport.ack(first, transaction=bound)
        transport.transaction_commit(bound)
        transport.ack(second)

    def test_txn_finished_or_foreign(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """TXN-6: finished transactions and other transports' raise TransportError."""
        queue = new_name()
        transport, other = connect(), connect()
        committed = transport.transaction_begin()
        transport.transaction_commit(committed)
        uses: list[Callable[[], None]] = [
            lambda: transport.transaction_commit(committed),
            lambda: transport.transaction_abort(committed),
            lambda: transport.send(queue, "x", transaction=committed),
        ]
        for use in uses:
            with pytest.raises(TransportError):
                use()
        foreign = other.transaction_begin()
        with pytest.raises(TransportError):
            transport.send(queue, "x", transaction=foreign)
        with pytest.raises(TransportError):
            transport.transaction_commit(foreign)
        other.transaction_abort(foreign)

    def test_txn_context_manager(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-7: `with transport.transaction():` commits, or aborts on an error."""
        queue = new_name()
        collector = self.collect(transport, queue)
        with transport.transaction() as committed:
            transport.send(queue, "committed", transaction=committed)
        assert transaction_state(committed) is TransactionState.COMMITTED
        aborted: list[Transaction] = []

        def fail_inside() -> None:
            with transport.transaction() as transaction:
                aborted.append(transaction)
                transport.send(queue, "aborted", transaction=transaction)
                raise ValueError("inside")

        with pytest.raises(ValueError, match="inside"):
            fail_inside()
        assert aborted[0].state is TransactionState.ABORTED
        assert [m.body for m in self.receive(collector)] == ["committed"]
        collector.assert_quiet(self.quiet_period)

    def test_txn_ended_by_disconnect_or_unsubscribe(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """TXN-8: disconnect aborts open transactions; unsubscribe its bound ones."""
        queue = new_name()
        _, message = self.held_message(transport, queue)
        bound = transport.transaction_begin(message.subscription)
        unbound = transport.transaction_begin()
        transport.send(queue, "never", transaction=unbound)
        transport.unsubscribe(message.subscription)
        assert transaction_state(bound) is TransactionState.ABORTED
        with pytest.raises(TransportError):
            transport.transaction_commit(bound)
        assert transaction_state(unbound) is TransactionState.OPEN
        transport.disconnect()
        transport.connect()
        assert transaction_state(unbound) is TransactionState.ABORTED
        with pytest.raises(TransportError):
            transport.transaction_commit(unbound)
        collector = self.collect(transport, queue)
        assert [m.body for m in self.receive(collector)] == ["input"]
        collector.assert_quiet(self.quiet_period)
