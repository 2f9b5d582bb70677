"""`MemoryTransport`: the `Transport` of the in-process `MemoryBroker`."""

from __future__ import annotations

import logging
import threading

from zocalo_core._errors import DisconnectedError, TransportError
from zocalo_core._memory._broker import MemoryBroker
from zocalo_core._memory._entries import Delivery, Session, TransactionOps
from zocalo_core.transport import (
    Capability,
    Message,
    Outcome,
    OutgoingMessage,
    Subscription,
    Transaction,
    Transport,
)

logger = logging.getLogger(__name__)

_default_lock = threading.Lock()
_default: MemoryBroker | None = None


def default_broker() -> MemoryBroker:
    """The process-wide broker that `MemoryTransport()` uses; made on first use."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = MemoryBroker()
        return _default


class MemoryTransport(Transport):
    """A transport to a `MemoryBroker` in this process; `None` is the default broker."""

    name = "memory"
    capabilities = frozenset(Capability)

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        super().__init__()
        self._given_broker = broker
        self._broker: MemoryBroker | None = None
        self._session: Session | None = None

    @property
    def broker(self) -> MemoryBroker:
        """The broker this transport talks to (or would, once connected)."""
        return self._broker or self._given_broker or default_broker()

    def _connect(self) -> None:
        broker = self._given_broker or default_broker()
        self._session = broker.attach(self)
        self._broker = broker

    def _disconnect(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._broker is not None:
            self._broker.detach(session)

    def _live(self) -> tuple[MemoryBroker, Session]:
        if self._broker is None or self._session is None or not self._session.open:
            raise DisconnectedError("the memory transport is not connected")
        return self._broker, self._session

    def _subscribe(self, subscription: Subscription) -> None:
        broker, session = self._live()
        broker.add_consumer(session, subscription)

    def _unsubscribe(self, subscription: Subscription) -> None:
        broker, session = self._live()
        broker.remove_consumer(session, subscription)

    def _send(self, outgoing: OutgoingMessage, transaction: Transaction | None) -> None:
        self._publish(outgoing, False, transaction)

    def _broadcast(
        self, outgoing: OutgoingMessage, transaction: Transaction | None
    ) -> None:
        self._publish(outgoing, True, transaction)

    def _publish(
        self,
        outgoing: OutgoingMessage,
        broadcast: bool,
        transaction: Transaction | None,
    ) -> None:
        broker, _ = self._live()
        if transaction is not None:
            ops = _ops(transaction)
            with ops.lock:
                _check_open(ops, transaction)
                ops.sends.append((outgoing, broadcast))
            return
        broker.publish(outgoing, broadcast=broadcast)
        logger.debug("Sent a message to %r", outgoing.destination)

    def _settle(
        self,
        message: Message,
        outcome: Outcome,
        transaction: Transaction | None,
        error: str | None,
    ) -> None:
        broker, _ = self._live()
        delivery = message.transport_data
        if not isinstance(delivery, Delivery):
            raise TransportError(f"{message!r} was not delivered by a memory broker")
        if transaction is None:
            broker.settle(delivery, outcome, error)
            return
        ops = _ops(transaction)
        with ops.lock:
            _check_open(ops, transaction)
            ops.settlements.append((delivery, outcome, error))

    def _transaction_begin(self, transaction: Transaction) -> None:
        self._live()
        transaction.transport_data = TransactionOps()

    def _transaction_commit(self, transaction: Transaction) -> None:
        broker, _ = self._live()
        ops = _ops(transaction)
        with ops.lock:
            _check_open(ops, transaction)
            ops.open = False
        broker.commit(ops)

    def _transaction_abort(self, transaction: Transaction) -> None:
        ops = _ops(transaction)
        with ops.lock:
            ops.open = False
            ops.sends.clear()
            ops.settlements.clear()


def _ops(transaction: Transaction) -> TransactionOps:
    ops = transaction.transport_data
    if not isinstance(ops, TransactionOps):
        raise TransportError(f"{transaction!r} was not begun by a memory transport")
    return ops


def _check_open(ops: TransactionOps, transaction: Transaction) -> None:
    if not ops.open:
        raise TransportError(f"{transaction!r} has finished; begin a new transaction")
