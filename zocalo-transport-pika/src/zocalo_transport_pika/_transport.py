"""`PikaTransport`: the Zocalo transport for RabbitMQ.

The public methods of `Transport` check arguments and keep the bookkeeping; the
protected methods here turn each call into a chain for the I/O thread (see `_loop`)
and wait for it, boundedly. Connecting, losing and restoring the connection are in
`_connection`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from zocalo_core import DisconnectedError, TransportError, ZocaloError
from zocalo_core.transport import (
    Capability,
    ConnectionState,
    DeathReason,
    Message,
    Outcome,
    OutgoingMessage,
    Subscription,
    Transaction,
    Transport,
)

from zocalo_transport_pika._codec import check_fits
from zocalo_transport_pika._connection import ConnectionKeeper
from zocalo_transport_pika._consumer import Consumer, Delivery
from zocalo_transport_pika._loop import Chain
from zocalo_transport_pika._operations import (
    Settlement,
    TransactionWork,
    Unroutable,
    ack_on_take_step,
    commit_chain,
    keep_unroutable_chain,
    publish_chain,
    settle_chain,
    settle_now,
)
from zocalo_transport_pika._session import Session, is_temporary_name
from zocalo_transport_pika._settings import PikaSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

CAPABILITIES = frozenset(
    {
        Capability.PREFETCH,
        Capability.DEAD_LETTER,
        Capability.DELIVERY_LIMIT,
        Capability.BROADCAST,
        Capability.TEMPORARY_QUEUES,
        Capability.TRANSACTIONS,
        Capability.DELAY,
        Capability.EXPIRATION,
        Capability.EXCHANGES,
    }
)
#: With `queue_type: classic`. Quorum queues never keep PRIO-1: before RabbitMQ 4.0
#: they have no priorities, from 4.0 on they favour 5-9 over 0-4 only 2:1.
CLASSIC_CAPABILITIES = CAPABILITIES | {Capability.PRIORITY}


def _dropped_reply(item: Unroutable) -> bool:
    """A send to a temporary queue that has gone: dropped with a WARNING (TEMP-2).

    Through an exchange the key is no queue that may have gone, so never that.
    """
    return is_temporary_name(item.destination) and not item.exchange


class PikaTransport(Transport):
    """A transport to RabbitMQ; the contract is docs/transport.md.

    Give the settings as a `PikaSettings`, a mapping of `pika` block keys, or as
    keywords: `PikaTransport(host="127.0.0.1", port=5672, username="guest", ...)`.
    """

    name = "pika"
    capabilities = CAPABILITIES

    def __init__(
        self,
        settings: PikaSettings | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if isinstance(settings, PikaSettings):
            if options:
                settings = PikaSettings.from_mapping(
                    {**_as_mapping(settings), **options}, "PikaTransport()"
                )
            self.settings = settings
        else:
            values = {**(settings or {}), **options}
            self.settings = PikaSettings.from_mapping(values, "PikaTransport()")
        if self.settings.queue_type == "classic":
            self.capabilities = CLASSIC_CAPABILITIES
        self._keeper = ConnectionKeeper(self)
        # The base class forgets its subscriptions before `_disconnect` runs; the
        # consumers' threads still have to be stopped then.
        self._consumers_lock = threading.Lock()
        self._consumers: set[Consumer] = set()

    @property
    def delivery_limit(self) -> int:
        return self.settings.delivery_limit

    def __repr__(self) -> str:
        endpoints = self.settings.describe_endpoints()
        return f"<PikaTransport {endpoints} {self._state.value}>"

    # -- what the keeper changes

    def _set_state(self, state: ConnectionState) -> None:
        self._state = state

    def _give_up(self, reason: BaseException | None) -> None:
        self._connection_lost(reason)
        for consumer in self._take_consumers():
            consumer.stop()

    def _take_consumers(self) -> list[Consumer]:
        with self._consumers_lock:
            consumers = list(self._consumers)
            self._consumers.clear()
        return consumers

    def _active_consumers(self) -> list[Consumer]:
        """The consumers to subscribe again after a reconnection.

        One that never started is left out: its own subscribe call, waiting for the
        reconnection, starts it.
        """
        with self._consumers_lock:
            consumers = list(self._consumers)
        return [c for c in consumers if c.subscription.active and c.handle is not None]

    def _consumer_channel_closed(self, handle: Any, reason: BaseException) -> None:
        self._keeper.consumer_channel_closed(handle, reason)

    # -- connection

    def _connect(self) -> None:
        self._keeper.open()

    def _disconnect(self) -> None:
        consumers = self._take_consumers()
        for consumer in consumers:
            consumer.stop()
        self._keeper.close()
        for consumer in consumers:
            consumer.join()

    def _call(
        self, make_chain: Callable[[Session], Chain[T]], what: str | Callable[[], str]
    ) -> T:
        return self._keeper.call(make_chain, what)

    # -- subscriptions

    def _subscribe(self, subscription: Subscription) -> None:
        consumer = Consumer(self, subscription)
        subscription.transport_data = consumer
        with self._consumers_lock:
            self._consumers.add(consumer)
        consumer.start_thread()
        try:
            self._call(
                consumer.start_chain, f"subscribe to {subscription.destination!r}"
            )
        except BaseException:
            self._forget_consumer(consumer)
            raise

    def _forget_consumer(self, consumer: Consumer) -> None:
        with self._consumers_lock:
            self._consumers.discard(consumer)
        consumer.stop()

    def _unsubscribe(self, subscription: Subscription) -> None:
        consumer = _consumer_of(subscription)
        self._forget_consumer(consumer)
        try:
            self._call(
                lambda session: consumer.stop_chain(),
                f"unsubscribe from {subscription.destination!r}",
            )
        except DisconnectedError:
            # Its channel went with the connection; RabbitMQ has ended it already.
            logger.debug("Unsubscribed %r without a connection", subscription)

    # -- sending

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
        check_fits(outgoing)
        if transaction is not None:
            _work_of(transaction).sends.append((outgoing, broadcast))
            return
        kind = "broadcast on" if broadcast else "send to"
        unroutable = self._call(
            lambda session: publish_chain(session, outgoing, broadcast),
            lambda: f"{kind} {outgoing.destination!r}",
        )
        if unroutable is not None:
            self._report_unroutable([unroutable], committed=False)
        logger.debug("Sent a message to %r", outgoing.destination)

    def _report_unroutable(
        self,
        unroutable: list[Unroutable],
        committed: bool,
        kept: Sequence[str] = (),
    ) -> None:
        lost = []
        for item in unroutable:
            if _dropped_reply(item):
                logger.warning(
                    "Dropped a message to %r: that temporary queue no longer exists "
                    "(RabbitMQ: %s)",
                    item.destination,
                    item.reason,
                    extra={"queue": item.destination},
                )
            else:
                lost.append(item)
        if lost:
            names = ", ".join(sorted({item.describe() for item in lost}))
            done = "the transaction was committed, but " if committed else ""
            problem = (
                f"{done}RabbitMQ could not route {len(lost)} message(s) to {names} "
                f"({lost[0].reason}); nothing was delivered there. Check that the "
                "queue exists (or the exchange routes to one) and that this user "
                "may write to it"
            )
            if kept:
                problem += (
                    f". They were kept in {', '.join(sorted(set(kept)))} "
                    "(reason unroutable), to be sent again from there"
                )
            if committed:
                logger.error("%s", problem)
            raise TransportError(problem)

    # -- settling

    def _settle(
        self,
        message: Message,
        outcome: Outcome,
        transaction: Transaction | None,
        error: str | None,
    ) -> None:
        settlement = self._plan(message, outcome, error)
        if transaction is not None:
            _work_of(transaction).settlements.append(settlement)
            return
        if settlement.dead_letter is None:
            self._settle_soon(settlement, outcome)
            return
        try:
            done = self._call(
                lambda session: settle_chain(session, settlement),
                f"{outcome.value} {message!r}",
            )
        except DisconnectedError:
            if not _cut_off_with_its_channel(settlement):
                raise
            done = False
        if not done:
            _warn_dropped(settlement, outcome)
        else:
            self._log_dead_letter(settlement)

    def _settle_soon(self, settlement: Settlement, outcome: Outcome) -> None:
        """Ack or nack without waiting: RabbitMQ sends no reply to either.

        The I/O thread takes work in the order it is handed over, so a send, an
        unsubscribe or a disconnect that follows still goes after it.
        """

        def step() -> None:
            if not settle_now(settlement):
                _warn_dropped(settlement, outcome)

        # Checked here too, so that the usual case is reported to the caller's
        # thread at once; the I/O thread checks again.
        delivery = settlement.delivery
        if not delivery.current():
            _warn_dropped(settlement, outcome)
            return
        if delivery.consumer.on_delivery_thread():
            # Its delivery thread hands the I/O thread more soon (the next send),
            # or flushes before it waits for deliveries: no wake-up of its own.
            handed = self._keeper.defer(
                step, lambda: _warn_dropped(settlement, outcome)
            )
        else:
            handed = self._keeper.submit(step)
        if handed:
            return
        if not _cut_off_with_its_channel(settlement):
            problem = (
                f"could not {outcome.value} {settlement.message!r}: the connection "
                "to RabbitMQ is closed"
            )
            raise DisconnectedError(problem)
        _warn_dropped(settlement, outcome)

    def _plan(
        self, message: Message, outcome: Outcome, error: str | None
    ) -> Settlement:
        if not isinstance(message.transport_data, Delivery):
            raise TransportError(f"{message!r} was not delivered by RabbitMQ")
        if outcome is Outcome.ACK:
            return Settlement(message)
        if outcome is Outcome.REJECT:
            return Settlement(
                message, dead_letter=DeathReason.REJECTED, error=error or "rejected"
            )
        if message.delivery_attempt < self.delivery_limit:
            return Settlement(message, requeue=True)
        last = (
            f"nacked on its last allowed delivery ({message.delivery_attempt} of "
            f"{self.delivery_limit})"
        )
        return Settlement(
            message, dead_letter=DeathReason.DELIVERY_LIMIT, error=error or last
        )

    def _log_dead_letter(self, settlement: Settlement) -> None:
        message = settlement.message
        logger.error(
            "Dead-lettered message %s of %r (%s): %s",
            message.message_id,
            message.destination,
            settlement.dead_letter.value if settlement.dead_letter else "",
            settlement.error,
            extra={"queue": message.destination, "message_id": message.message_id},
        )

    def _dead_letter_on_delivery(
        self, message: Message, reason: DeathReason, error: str
    ) -> None:
        """From a delivery thread: dead-letter a message its handler never sees."""
        settlement = Settlement(
            message,
            dead_letter=reason,
            error=error,
            ack=message.subscription.acknowledgement,
        )
        try:
            done = self._call(
                lambda session: settle_chain(session, settlement),
                f"dead-letter {message!r}",
            )
        except ZocaloError as exc:
            logger.error("Could not dead-letter %r: %s", message, exc)
            return
        if done:
            self._log_dead_letter(settlement)

    def _ack_on_take(self, delivery: Delivery) -> None:
        """From the delivery thread, which hands over more soon (see `_settle_soon`).

        If the I/O loop ends first, the ack goes with the connection, whose loss is
        reported by itself, and RabbitMQ delivers the message again: no warning here.
        """
        self._keeper.defer(lambda: ack_on_take_step(delivery), lambda: None)

    # -- transactions

    def _transaction_begin(self, transaction: Transaction) -> None:
        # Nothing goes to RabbitMQ before the commit (see `_operations`).
        transaction.transport_data = TransactionWork()

    def _transaction_commit(self, transaction: Transaction) -> None:
        work = _work_of(transaction)
        if not work.sends and not work.settlements:
            return
        consumer = None
        if transaction.subscription is not None:
            consumer = _consumer_of(transaction.subscription)
        unroutable = self._call(
            lambda session: commit_chain(session, work, consumer),
            lambda: f"commit {transaction!r}",
        )
        for settlement in work.settlements:
            if settlement.dead_letter is not None:
                self._log_dead_letter(settlement)
        lost = [item for item in unroutable if not _dropped_reply(item)]
        kept: list[str] = []
        if lost:
            try:
                kept = self._call(
                    lambda session: keep_unroutable_chain(session, lost),
                    "keep unroutable messages in dead-letter queues",
                )
            except ZocaloError:
                logger.exception("Could not keep the unroutable messages")
        self._report_unroutable(unroutable, committed=True, kept=kept)

    def _transaction_abort(self, transaction: Transaction) -> None:
        work = transaction.transport_data
        if isinstance(work, TransactionWork):
            work.sends.clear()
            work.settlements.clear()


def _warn_dropped(settlement: Settlement, outcome: Outcome) -> None:
    message = settlement.message
    logger.warning(
        "Dropped the %s of %r: it came on a channel that has closed since "
        "(the connection was lost), so RabbitMQ delivers it again",
        outcome.value,
        message,
        extra={"queue": message.destination, "message_id": message.message_id},
    )


def _cut_off_with_its_channel(settlement: Settlement) -> bool:
    """Whether a plain settlement the lost connection cut off is dropped, not raised.

    Its channel went with the connection, so RabbitMQ either had the ack or nack
    already or delivers the message again; there is nothing for the caller to redo,
    and raising would make a service give up a connection that is coming back. A
    dead letter may already be out, so that case still raises.
    """
    return settlement.dead_letter is None and not settlement.delivery.current()


def _consumer_of(subscription: Subscription) -> Consumer:
    consumer = subscription.transport_data
    if not isinstance(consumer, Consumer):
        raise TransportError(f"{subscription!r} was not made by a pika transport")
    return consumer


def _work_of(transaction: Transaction) -> TransactionWork:
    work = transaction.transport_data
    if not isinstance(work, TransactionWork):
        raise TransportError(f"{transaction!r} was not begun by a pika transport")
    return work


def _as_mapping(settings: PikaSettings) -> dict[str, Any]:
    values = {
        field: getattr(settings, field)
        for field in settings.__dataclass_fields__
        if field != "endpoints"
    }
    values["host"] = [host for host, _ in settings.endpoints]
    values["port"] = [port for _, port in settings.endpoints]
    return values


__all__ = ["CAPABILITIES", "CLASSIC_CAPABILITIES", "PikaTransport"]
