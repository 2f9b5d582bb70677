"""The transport interface: how Zocalo talks to a message broker.

`Transport` is the one interface every broker connection implements. Its contract is the
protocol page, docs/transport.md, whose rule identifiers (QUEUE-2, TXN-5, ...) the code
and the conformance suite in `zocalo_core.testing` refer to. The public methods of
`Transport` check their arguments and keep what every transport shares (the state, the
subscriptions, the transactions, which messages are settled), then call the protected
methods that a concrete transport implements.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from zocalo_core._errors import (
    DisconnectedError,
    TransportError,
    ZocaloError,
)
from zocalo_core._transport_types import (
    DEAD_LETTER_PREFIX,
    DEATHS_HEADER,
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_PRIORITY,
    MAX_NAME_BYTES,
    Capability,
    ConnectionState,
    DeathReason,
    Handler,
    HeaderValue,
    Message,
    Outcome,
    OutgoingMessage,
    Subscription,
    SubscriptionKind,
    Transaction,
    TransactionState,
    _Settled,
    add_death,
    build_outgoing,
    check_headers,
    check_name,
    dead_letter_queue,
    decode_body,
    encode_body,
    settle_problem,
    temporary_queue_name,
    transaction_problem,
)

__all__ = [
    "DEAD_LETTER_PREFIX",
    "DEATHS_HEADER",
    "DEFAULT_DELIVERY_LIMIT",
    "DEFAULT_PRIORITY",
    "MAX_NAME_BYTES",
    "Capability",
    "ConnectionState",
    "DeathReason",
    "Handler",
    "HeaderValue",
    "Message",
    "Outcome",
    "OutgoingMessage",
    "Subscription",
    "SubscriptionKind",
    "Transaction",
    "TransactionState",
    "Transport",
    "add_death",
    "check_headers",
    "check_name",
    "dead_letter_queue",
    "decode_body",
    "encode_body",
]

logger = logging.getLogger(__name__)

_TransportT = TypeVar("_TransportT", bound="Transport")


class Transport(abc.ABC):
    """A connection to a message broker; the contract is docs/transport.md.

    Subclasses set `name` and `capabilities` (on the class, or on an instance whose
    settings change them), call `super().__init__()`, and implement
    the protected methods: `_connect`, `_disconnect`, `_subscribe`, `_unsubscribe`,
    `_send`, `_settle`, and, for the capabilities they list, `_broadcast` and the
    `_transaction_*` methods. They run handlers through `_deliver`.
    """

    name: ClassVar[str] = ""
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self) -> None:
        # `_lock` guards the bookkeeping below and is never held while calling a
        # handler or a protected method; `_lifecycle` serialises connect/disconnect.
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._state = ConnectionState.DISCONNECTED
        self._subscriptions: dict[str, Subscription] = {}
        self._transactions: dict[str, Transaction] = {}
        self._counter = itertools.count(1)

    # -- connection

    @property
    def state(self) -> ConnectionState:
        return self._state

    def is_connected(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    def connect(self) -> None:
        """Connect; does nothing when already connected (CONN-1, CONN-3)."""
        with self._lifecycle:
            if self._state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTING):
                return
            self._state = ConnectionState.CONNECTING
            try:
                self._connect()
            except Exception as exc:
                self._state = ConnectionState.DISCONNECTED
                if isinstance(exc, DisconnectedError):
                    raise
                error = DisconnectedError(
                    f"the {self.name} transport could not connect: {exc}"
                )
                raise error from exc
            self._state = ConnectionState.CONNECTED
        logger.info("Connected the %s transport", self.name)

    def disconnect(self) -> None:
        """Disconnect, ending every subscription and transaction (CONN-5, TXN-8)."""
        with self._lifecycle:
            if self._state is ConnectionState.DISCONNECTED:
                return
            self._end_all()
            try:
                self._disconnect()
            finally:
                self._state = ConnectionState.DISCONNECTED
        logger.info("Disconnected the %s transport", self.name)

    def __enter__(self: _TransportT) -> _TransportT:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def _connection_lost(self, exc: BaseException | None = None) -> None:
        """For subclasses: the connection is gone for good; the state becomes FAILED."""
        self._end_all()
        self._state = ConnectionState.FAILED
        logger.warning("The %s transport lost its connection: %s", self.name, exc)

    def _end_all(self) -> None:
        with self._lock:
            for subscription in self._subscriptions.values():
                subscription._active = False
            for transaction in self._transactions.values():
                self._finish(transaction, TransactionState.ABORTED)
            self._subscriptions.clear()
            self._transactions.clear()

    def _require_connected(self) -> None:
        if self._state not in (ConnectionState.CONNECTED, ConnectionState.RECONNECTING):
            problem = (
                f"the {self.name} transport is not connected (it is "
                f"{self._state.value}); call connect() first"
            )
            raise DisconnectedError(problem)

    def _require(self, capability: Capability, feature: str) -> None:
        if capability not in self.capabilities:
            problem = (
                f"the {self.name} transport cannot do {feature}: it does not have the "
                f"{capability.value!r} capability; use a transport that has it"
            )
            raise TransportError(problem)

    def _backend(self, action: str | Callable[[], str]) -> _BackendGuard:
        """Turn an unexpected exception of a protected method into a TransportError.

        `action` may be a function giving the text, so that a call that succeeds
        (nearly all of them) never builds it.
        """
        return _BackendGuard(self.name, action)

    def _next_id(self) -> str:
        return str(next(self._counter))

    # -- subscriptions

    def subscribe(
        self,
        queue: str,
        handler: Handler,
        *,
        acknowledgement: bool = True,
        prefetch: int = 1,
        decode: bool = True,
    ) -> Subscription:
        """Consume `queue`, calling `handler(message)` for each message."""
        self._require_connected()
        check_name(queue, "queue")
        return self._start(
            SubscriptionKind.QUEUE, queue, handler, acknowledgement, prefetch, decode
        )

    def subscribe_broadcast(
        self, topic: str, handler: Handler, *, decode: bool = True
    ) -> Subscription:
        """Receive every broadcast on `topic` from now on, without acknowledgement."""
        self._require_connected()
        self._require(Capability.BROADCAST, "broadcasts")
        check_name(topic, "topic")
        return self._start(SubscriptionKind.BROADCAST, topic, handler, False, 1, decode)

    def subscribe_temporary(
        self,
        handler: Handler,
        *,
        hint: str | None = None,
        acknowledgement: bool = True,
        prefetch: int = 1,
        decode: bool = True,
    ) -> Subscription:
        """Consume a new private queue; its name is `subscription.destination`."""
        self._require_connected()
        self._require(Capability.TEMPORARY_QUEUES, "temporary queues")
        if hint:
            check_name(hint, "temporary queue hint")
        with self._backend("name a temporary queue"):
            queue = check_name(self._temporary_queue_name(hint or None), "queue")
        return self._start(
            SubscriptionKind.TEMPORARY,
            queue,
            handler,
            acknowledgement,
            prefetch,
            decode,
        )

    def _start(
        self,
        kind: SubscriptionKind,
        destination: str,
        handler: Handler,
        acknowledgement: bool,
        prefetch: int,
        decode: bool,
    ) -> Subscription:
        if not callable(handler):
            raise TransportError(f"the handler for {destination!r} is not callable")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            problem = (
                f"prefetch for {destination!r} must be an int >= 1, not {prefetch!r}"
            )
            raise TransportError(problem)
        subscription = Subscription(
            subscription_id=self._next_id(),
            kind=kind,
            destination=destination,
            handler=handler,
            acknowledgement=bool(acknowledgement),
            prefetch=prefetch,
            decode=bool(decode),
            transport=self,
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        try:
            with self._backend(f"subscribe to {destination!r}"):
                self._subscribe(subscription)
        except BaseException:
            with self._lock:
                self._subscriptions.pop(subscription.id, None)
                subscription._active = False
            raise
        logger.debug("Subscribed %s to %s %r", subscription.id, kind.value, destination)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """End `subscription`; its unsettled messages go back (QUEUE-6, REDEL-3)."""
        self._require_connected()
        with self._lock:
            if (
                self._subscriptions.get(getattr(subscription, "id", ""))
                is not subscription
            ):
                problem = (
                    f"cannot unsubscribe {subscription!r}: it has already ended or "
                    f"belongs to another transport than this {self.name} transport"
                )
                raise TransportError(problem)
            del self._subscriptions[subscription.id]
            subscription._active = False
            bound = [
                t for t in self._transactions.values() if t.subscription is subscription
            ]
            for transaction in bound:
                del self._transactions[transaction.id]
                self._finish(transaction, TransactionState.ABORTED)
        for transaction in bound:
            self._abort_quietly(transaction)
        with self._backend(f"unsubscribe from {subscription.destination!r}"):
            self._unsubscribe(subscription)
        logger.debug(
            "Unsubscribed %s from %r", subscription.id, subscription.destination
        )

    def _temporary_queue_name(self, hint: str | None) -> str:
        """The name for a new temporary queue; transports may choose otherwise."""
        return temporary_queue_name(hint)

    # -- sending

    def send(
        self,
        queue: str,
        body: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Transaction | None = None,
        exchange: str | None = None,
    ) -> None:
        """Put a message on `queue`. A `bytes` body is sent as it is (BODY-2).

        With `exchange`, the message goes through that broker exchange instead, with
        `queue` as its routing key (EXCH-1); `None` or "" is the queue itself.
        """
        self._require_connected()
        check_name(queue, "queue")
        if exchange is not None and exchange != "":
            check_name(exchange, "exchange")
            self._require(Capability.EXCHANGES, "sends through an exchange")
        outgoing = build_outgoing(
            queue, body, headers, delay, expiration, priority, exchange or ""
        )
        self._require_features(outgoing, priority is not None)
        with self._lock:
            self._check_transaction(transaction)
        with self._backend(f"send to {queue!r}"):
            self._send(outgoing, transaction)

    def broadcast(
        self,
        topic: str,
        body: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        transaction: Transaction | None = None,
    ) -> None:
        """Give a message to every current subscriber of `topic` (BCAST-1)."""
        self._require_connected()
        self._require(Capability.BROADCAST, "broadcasts")
        check_name(topic, "topic")
        outgoing = build_outgoing(topic, body, headers, delay, expiration, None)
        self._require_features(outgoing, False)
        with self._lock:
            self._check_transaction(transaction)
        with self._backend(f"broadcast on {topic!r}"):
            self._broadcast(outgoing, transaction)

    def _require_features(self, outgoing: OutgoingMessage, priority: bool) -> None:
        if outgoing.delay:
            self._require(Capability.DELAY, "delayed messages")
        if outgoing.expiration is not None:
            self._require(Capability.EXPIRATION, "message expiration")
        if priority:
            self._require(Capability.PRIORITY, "message priorities")

    # -- settling messages

    def ack(self, message: Message, *, transaction: Transaction | None = None) -> None:
        """The message is handled; it is not delivered again (ACK-1)."""
        self._settle_checked(message, Outcome.ACK, transaction, None)

    def nack(self, message: Message, *, transaction: Transaction | None = None) -> None:
        """Put the message back for another try; at the delivery limit, dead-letter."""
        self._settle_checked(message, Outcome.NACK, transaction, None)

    def reject(
        self, message: Message, reason: str, *, transaction: Transaction | None = None
    ) -> None:
        """Dead-letter the message now, with `reason` as the death's error (DLQ-1)."""
        if not isinstance(reason, str) or not reason.strip():
            raise TransportError(
                f"reject of {message!r} needs a non-empty reason string"
            )
        self._settle_checked(message, Outcome.REJECT, transaction, reason)

    def _settle_checked(
        self,
        message: Message,
        outcome: Outcome,
        transaction: Transaction | None,
        error: str | None,
    ) -> None:
        self._require_connected()
        with self._lock:
            self._check_settleable(message, outcome)
            self._check_transaction(transaction, message)
            message._settlement = transaction or _Settled.SETTLING
            if transaction is not None:
                transaction._messages.append(message)
        try:
            with self._backend(lambda: f"{outcome.value} {message!r}"):
                self._settle(message, outcome, transaction, error)
        except BaseException:
            with self._lock:
                message._settlement = None
                if transaction is not None:
                    transaction._messages.remove(message)
            raise
        if transaction is None:
            message._settlement = _Settled.SETTLED

    def _check_settleable(self, message: Message, outcome: Outcome) -> None:
        problem = settle_problem(self, message, outcome)
        if problem:
            raise TransportError(problem)

    def _check_transaction(
        self, transaction: Transaction | None, message: Message | None = None
    ) -> None:
        """Check, under `_lock`, that `transaction` may be used here (TXN-5, TXN-6)."""
        if transaction is None:
            return
        registered = self._transactions.get(getattr(transaction, "id", ""))
        problem = transaction_problem(self, transaction, registered, message)
        if problem:
            raise TransportError(problem)

    def _deliver(self, message: Message) -> None:
        """For subclasses: run the handler; an exception logs and nacks (REDEL-2)."""
        subscription = message.subscription
        try:
            subscription.handler(message)
        except Exception as exc:
            logger.exception(
                "The handler of %s %r failed on message %s",
                subscription.kind.value,
                subscription.destination,
                message.message_id,
                extra={
                    "queue": subscription.destination,
                    "message_id": message.message_id,
                },
            )
            if subscription.acknowledgement:
                self._nack_after_failure(message, f"{type(exc).__name__}: {exc}")

    def _nack_after_failure(self, message: Message, error: str) -> None:
        with self._lock:
            if message._settlement is not None or not message.subscription.active:
                return
            message._settlement = _Settled.SETTLING
        try:
            self._settle(message, Outcome.NACK, None, error)
        except Exception:
            logger.warning(
                "Could not nack %r after its handler failed", message, exc_info=True
            )
        message._settlement = _Settled.SETTLED

    # -- transactions

    def transaction_begin(
        self, subscription: Subscription | None = None
    ) -> Transaction:
        """Begin a transaction, bound to `subscription` if it is to settle messages."""
        self._require_connected()
        self._require(Capability.TRANSACTIONS, "transactions")
        transaction = Transaction(self._next_id(), subscription, self)
        with self._lock:
            if subscription is not None and (
                self._subscriptions.get(getattr(subscription, "id", ""))
                is not subscription
            ):
                problem = (
                    f"cannot begin a transaction on {subscription!r}: it has ended or "
                    f"belongs to another transport than this {self.name} transport"
                )
                raise TransportError(problem)
            self._transactions[transaction.id] = transaction
        try:
            with self._backend("begin a transaction"):
                self._transaction_begin(transaction)
        except BaseException:
            with self._lock:
                self._transactions.pop(transaction.id, None)
                self._finish(transaction, TransactionState.ABORTED)
            raise
        return transaction

    def transaction_commit(self, transaction: Transaction) -> None:
        """Make the transaction's sends and settlements take effect, all together."""
        self._end_transaction(transaction, TransactionState.COMMITTED)

    def transaction_abort(self, transaction: Transaction) -> None:
        """Drop the transaction's sends and settlements (TXN-1, TXN-2, TXN-3)."""
        self._end_transaction(transaction, TransactionState.ABORTED)

    @contextlib.contextmanager
    def transaction(
        self, subscription: Subscription | None = None
    ) -> Iterator[Transaction]:
        """Commit when the block ends normally, abort when it raises (TXN-7)."""
        transaction = self.transaction_begin(subscription)
        try:
            yield transaction
        except BaseException:
            if transaction.state is TransactionState.OPEN:
                self._abort_quietly(transaction, unregister=True)
            raise
        self.transaction_commit(transaction)

    def _end_transaction(
        self, transaction: Transaction, final: TransactionState
    ) -> None:
        self._require_connected()
        with self._lock:
            self._check_transaction(transaction)
            del self._transactions[transaction.id]
        action = "commit" if final is TransactionState.COMMITTED else "abort"
        try:
            with self._backend(lambda: f"{action} {transaction!r}"):
                if final is TransactionState.COMMITTED:
                    self._transaction_commit(transaction)
                else:
                    self._transaction_abort(transaction)
        except BaseException:
            with self._lock:
                self._finish(transaction, TransactionState.ABORTED)
            raise
        with self._lock:
            self._finish(transaction, final)

    def _abort_quietly(
        self, transaction: Transaction, *, unregister: bool = False
    ) -> None:
        if unregister:
            with self._lock:
                if self._transactions.pop(transaction.id, None) is None:
                    return
                self._finish(transaction, TransactionState.ABORTED)
        try:
            self._transaction_abort(transaction)
        except Exception:
            logger.warning("Could not abort %r", transaction, exc_info=True)

    @staticmethod
    def _finish(transaction: Transaction, final: TransactionState) -> None:
        """Under `_lock`: end `transaction`, settling or releasing its messages."""
        transaction._state = final
        settled = _Settled.SETTLED if final is TransactionState.COMMITTED else None
        for message in transaction._messages:
            if message._settlement is transaction:
                message._settlement = settled
        transaction._messages.clear()

    # -- what a transport implements

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open the connection; raise `DisconnectedError` when that fails."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close the connection; unacknowledged messages go back to the broker."""

    @abc.abstractmethod
    def _subscribe(self, subscription: Subscription) -> None:
        """Start delivering to `subscription` (of any `SubscriptionKind`)."""

    @abc.abstractmethod
    def _unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering; its unacknowledged messages go back (REDEL-3)."""

    @abc.abstractmethod
    def _send(self, outgoing: OutgoingMessage, transaction: Transaction | None) -> None:
        """Publish to the queue `outgoing.destination`, in `transaction` if given."""

    @abc.abstractmethod
    def _settle(
        self,
        message: Message,
        outcome: Outcome,
        transaction: Transaction | None,
        error: str | None,
    ) -> None:
        """Ack, nack or reject `message`; `error` is the text for a death entry."""

    def _broadcast(
        self, outgoing: OutgoingMessage, transaction: Transaction | None
    ) -> None:
        """Publish to the topic `outgoing.destination`; needs `broadcast`."""
        raise TransportError(f"the {self.name} transport does not implement broadcasts")

    def _transaction_begin(self, transaction: Transaction) -> None:
        raise TransportError(
            f"the {self.name} transport does not implement transactions"
        )

    def _transaction_commit(self, transaction: Transaction) -> None:
        raise TransportError(
            f"the {self.name} transport does not implement transactions"
        )

    def _transaction_abort(self, transaction: Transaction) -> None:
        raise TransportError(
            f"the {self.name} transport does not implement transactions"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"


class _BackendGuard:
    """The context manager of `Transport._backend`, kept cheap: it wraps every call."""

    __slots__ = ("_action", "_transport_name")

    def __init__(self, transport_name: str, action: str | Callable[[], str]) -> None:
        self._transport_name = transport_name
        self._action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, ZocaloError):
            return
        action = self._action if isinstance(self._action, str) else self._action()
        error = TransportError(
            f"the {self._transport_name} transport failed to {action}: {exc}"
        )
        raise error from exc
