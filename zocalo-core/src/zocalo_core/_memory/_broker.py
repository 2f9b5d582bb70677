"""The in-process broker behind the `memory` transport.

One lock guards the whole broker. Each consumer has a delivery thread that waits on its
own condition of that lock; one timer thread moves delayed messages into their queues
and drops expired ones. No lock is held while a handler runs, and log records made under
the lock are written after it is released, so a logging handler may use the broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from zocalo_core._errors import DisconnectedError, MessageError, TransportError
from zocalo_core._memory._entries import (
    Consumer,
    Delivery,
    Entry,
    EntryState,
    MemoryQueue,
    QueuedMessage,
    Session,
    TransactionOps,
    copy_value,
)
from zocalo_core._memory._inspection import BrokerInspection
from zocalo_core.transport import (
    DEFAULT_DELIVERY_LIMIT,
    DeathReason,
    Message,
    Outcome,
    OutgoingMessage,
    Subscription,
    SubscriptionKind,
    add_death,
    check_name,
    dead_letter_queue,
    decode_body,
)

if TYPE_CHECKING:
    from zocalo_core._memory._transport import MemoryTransport

logger = logging.getLogger(__name__)

Match = Callable[[QueuedMessage], bool]

# Idle threads wake this often even without news, so that one missed notification
# could never leave a thread asleep for good.
_IDLE_WAIT = 30.0


class MemoryBroker(BrokerInspection):
    """An in-process message broker with the semantics of docs/transport.md.

    `delivery_limit` is how often a message may be delivered before a nack (or a
    handler exception, or a lost consumer) dead-letters it.
    """

    def __init__(self, *, delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> None:
        if isinstance(delivery_limit, bool) or not isinstance(delivery_limit, int):
            raise TransportError(
                f"delivery_limit must be an int, not {delivery_limit!r}"
            )
        if delivery_limit < 1:
            raise TransportError(
                f"delivery_limit must be at least 1, not {delivery_limit}"
            )
        self.delivery_limit = delivery_limit
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._timer_wakeup = threading.Condition(self._lock)
        self._queues: dict[str, MemoryQueue] = {}
        self._topics: dict[str, list[Consumer]] = {}
        #: exchange -> routing key -> the queues bound with that key.
        self._exchanges: dict[str, dict[str, set[str]]] = {}
        self._removed_temporary: set[str] = set()
        self._sessions: list[Session] = []
        # Stopped consumers whose handler is still running: still "being handled".
        self._draining: set[Consumer] = set()
        self._timers: list[tuple[float, int, str, Entry]] = []
        self._delayed: set[Entry] = set()
        self._sequence = itertools.count()
        self._generation = 0
        self._closed = False
        self._timer_thread: threading.Thread | None = None
        self._logs: list[tuple[int, str, tuple[Any, ...]]] = []

    def __repr__(self) -> str:
        return f"<MemoryBroker {len(self._queues)} queues>"

    # -- locking, logging and change notification

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self._lock:
                yield
        finally:
            if self._logs:
                self._flush_logs()

    def _flush_logs(self) -> None:
        with self._lock:
            logs, self._logs = self._logs, []
        for level, text, args in logs:
            logger.log(level, text, *args)

    def _log(self, level: int, text: str, *args: Any) -> None:
        """Under the lock: log once the lock is released."""
        self._logs.append((level, text, args))

    def _note_change(self) -> None:
        self._generation += 1
        self._changed.notify_all()

    # -- sessions and consumers, for MemoryTransport

    def attach(self, transport: MemoryTransport) -> Session:
        with self._locked():
            if self._closed:
                problem = "the memory broker has been closed; connect to a new one"
                raise DisconnectedError(problem)
            session = Session(transport)
            self._sessions.append(session)
            return session

    def detach(self, session: Session) -> None:
        with self._locked():
            self._end_session(session)

    def _end_session(self, session: Session) -> None:
        if not session.open:
            return
        session.open = False
        for consumer in list(session.consumers.values()):
            self._stop_consumer(consumer)
        session.consumers.clear()
        if session in self._sessions:
            self._sessions.remove(session)
        self._note_change()

    def add_consumer(self, session: Session, subscription: Subscription) -> None:
        with self._locked():
            if not session.open:
                raise DisconnectedError("the memory transport's session has ended")
            name = subscription.destination
            if subscription.kind is SubscriptionKind.BROADCAST:
                queue = MemoryQueue(name)
            elif subscription.kind is SubscriptionKind.TEMPORARY:
                queue = self._queues[name] = MemoryQueue(name, temporary=True)
            else:
                queue = self._queue(name)
            consumer = Consumer(subscription, queue, session, self._lock)
            if subscription.kind is SubscriptionKind.BROADCAST:
                self._topics.setdefault(name, []).append(consumer)
            else:
                queue.consumers.append(consumer)
            session.consumers[subscription.id] = consumer
            consumer.thread = threading.Thread(
                target=self._consume,
                args=(consumer,),
                name=f"zocalo-memory {subscription.kind.value} {name}",
                daemon=True,
            )
            consumer.thread.start()

    def remove_consumer(self, session: Session, subscription: Subscription) -> None:
        with self._locked():
            consumer = session.consumers.pop(subscription.id, None)
            if consumer is not None:
                self._stop_consumer(consumer)
                self._note_change()

    def _stop_consumer(self, consumer: Consumer) -> None:
        """Stop deliveries and return what the consumer held (REDEL-3, LIMIT-3)."""
        consumer.stopped = True
        consumer.wakeup.notify()
        if consumer.handling is not None:
            self._draining.add(consumer)
        queue = consumer.queue
        if consumer.subscription.kind is SubscriptionKind.BROADCAST:
            subscribers = self._topics.get(queue.name, [])
            if consumer in subscribers:
                subscribers.remove(consumer)
            queue.clear()
        elif consumer in queue.consumers:
            queue.consumers.remove(consumer)
        for delivery in consumer.unacked:
            delivery.open = False
            if queue.temporary:
                delivery.entry.state = EntryState.GONE
            else:
                self._retry(
                    delivery.entry, "its consumer went away without settling it"
                )
        consumer.unacked.clear()
        if queue.temporary and self._queues.get(queue.name) is queue:
            # TEMP-2: the queue goes with its subscription, and is not made again.
            queue.clear()
            del self._queues[queue.name]
            self._removed_temporary.add(queue.name)

    def _queue(self, name: str) -> MemoryQueue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = MemoryQueue(name)
        return queue

    # -- exchanges

    def bind(self, exchange: str, routing_key: str, queue: str) -> None:
        """Make `exchange` (made if new) route messages sent with `routing_key` to
        `queue`. Exchanges here are direct: a send through one reaches every queue
        bound with its routing key (EXCH-1)."""
        for name, what in (
            (exchange, "exchange"),
            (routing_key, "queue"),
            (queue, "queue"),
        ):
            check_name(name, what)
        with self._locked():
            bindings = self._exchanges.setdefault(exchange, {})
            bindings.setdefault(routing_key, set()).add(queue)

    def delete_exchange(self, exchange: str) -> None:
        """Remove `exchange` and its bindings; sends through it fail from now on."""
        with self._locked():
            self._exchanges.pop(exchange, None)

    def _bound_queues(self, outgoing: OutgoingMessage) -> list[str]:
        """Under the lock: where `outgoing` goes through its exchange (EXCH-2)."""
        bindings = self._exchanges.get(outgoing.exchange)
        if bindings is None:
            raise TransportError(
                f"could not send to {outgoing.destination!r}: the memory broker has "
                f"no exchange {outgoing.exchange!r}; nothing was sent"
            )
        queues = bindings.get(outgoing.destination)
        if not queues:
            raise TransportError(
                f"could not send to {outgoing.destination!r}: the exchange "
                f"{outgoing.exchange!r} routes that key to no queue; nothing was sent"
            )
        return sorted(queues)

    # -- publishing

    def publish(self, outgoing: OutgoingMessage, *, broadcast: bool) -> None:
        with self._locked():
            self._publish(outgoing, broadcast, time.monotonic())

    def commit(self, ops: TransactionOps) -> None:
        """Apply a transaction's sends and settlements at once (TXN-4)."""
        with self._locked():
            for delivery, _, _ in ops.settlements:
                if not delivery.open:
                    problem = (
                        f"cannot commit: message {delivery.entry.message_id} went back "
                        "to its queue when its subscription ended; nothing was applied"
                    )
                    raise TransportError(problem)
            for outgoing, _ in ops.sends:
                if outgoing.exchange:
                    self._bound_queues(outgoing)
            now = time.monotonic()
            for outgoing, broadcast in ops.sends:
                self._publish(outgoing, broadcast, now)
            for delivery, outcome, error in ops.settlements:
                self._settle(delivery, outcome, error)

    def _publish(self, outgoing: OutgoingMessage, broadcast: bool, now: float) -> None:
        if self._closed:
            raise DisconnectedError("the memory broker has been closed")
        if outgoing.exchange:
            for queue in self._bound_queues(outgoing):
                routed = dataclasses.replace(outgoing, destination=queue, exchange="")
                self._publish(routed, broadcast, now)
            return
        expires_at = None if outgoing.expiration is None else now + outgoing.expiration
        entry = self._entry(
            outgoing.destination,
            outgoing.raw,
            outgoing.headers,
            outgoing.priority,
            expires_at,
            broadcast,
        )
        if outgoing.delay > 0:
            entry.state = EntryState.DELAYED
            self._delayed.add(entry)
            self._add_timer(now + outgoing.delay, "due", entry)
        else:
            self._route(entry, now)
        if expires_at is not None and entry.state is not EntryState.GONE:
            self._add_timer(expires_at, "expire", entry)
        self._note_change()

    def _entry(
        self,
        destination: str,
        raw: bytes,
        headers: dict[str, Any],
        priority: int,
        expires_at: float | None,
        broadcast: bool,
        message_id: str | None = None,
    ) -> Entry:
        return Entry(
            seq=next(self._sequence),
            message_id=message_id or uuid.uuid4().hex,
            destination=destination,
            raw=raw,
            headers=headers,
            priority=priority,
            expires_at=expires_at,
            broadcast=broadcast,
        )

    def _route(self, entry: Entry, now: float) -> None:
        """Put a due entry where it is delivered from (QUEUE-2, BCAST-1, TEMP-2)."""
        if entry.expired(now):
            entry.state = EntryState.GONE
            return
        if entry.broadcast:
            self._fan_out(entry)
            return
        queue = self._queues.get(entry.destination)
        if queue is None and entry.destination in self._removed_temporary:
            entry.state = EntryState.GONE
            self._log(
                logging.WARNING,
                "Dropped message %s: the temporary queue %s no longer exists",
                entry.message_id,
                entry.destination,
            )
            return
        queue = queue or self._queue(entry.destination)
        queue.push(entry)
        for consumer in queue.consumers:
            consumer.wakeup.notify()

    def _fan_out(self, entry: Entry) -> None:
        entry.state = EntryState.GONE
        for consumer in self._topics.get(entry.destination, []):
            copy = self._entry(
                entry.destination,
                entry.raw,
                entry.headers,
                entry.priority,
                entry.expires_at,
                True,
                entry.message_id,
            )
            consumer.queue.push(copy)
            if copy.expires_at is not None:
                self._add_timer(copy.expires_at, "expire", copy)
            consumer.wakeup.notify()

    # -- timers: delays and expiration

    def _add_timer(self, when: float, action: str, entry: Entry) -> None:
        heapq.heappush(self._timers, (when, next(self._sequence), action, entry))
        if self._timer_thread is None:
            self._timer_thread = threading.Thread(
                target=self._run_timers, name="zocalo-memory timers", daemon=True
            )
            self._timer_thread.start()
        self._timer_wakeup.notify()

    def _run_timers(self) -> None:
        while True:
            with self._locked():
                if self._closed:
                    return
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, action, entry = heapq.heappop(self._timers)
                    self._fire(action, entry, now)
                wait = self._timers[0][0] - now if self._timers else _IDLE_WAIT
                self._timer_wakeup.wait(min(wait, _IDLE_WAIT))

    def _fire(self, action: str, entry: Entry, now: float) -> None:
        if entry.state is EntryState.DELAYED and action == "due":
            self._delayed.discard(entry)
            self._route(entry, now)
        elif entry.state is EntryState.DELAYED:
            # EXPIRE-3: it expired before it was due, so it is never delivered.
            self._delayed.discard(entry)
            entry.state = EntryState.GONE
        elif entry.state is EntryState.READY and entry.queue is not None:
            entry.queue.drop(entry)
        else:
            return
        self._note_change()

    # -- delivering

    def _consume(self, consumer: Consumer) -> None:
        """The delivery thread of one consumer: one message at a time (THREAD-4)."""
        while True:
            with self._locked():
                delivery = self._next_delivery(consumer)
            if delivery is None:
                return
            message = self._message(consumer, delivery)
            if message is not None:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("Delivering %r", message)
                consumer.session.transport._deliver(message)
            with self._locked():
                consumer.handling = None
                self._draining.discard(consumer)
                if not consumer.subscription.acknowledgement:
                    delivery.entry.state = EntryState.GONE
                self._note_change()

    def _next_delivery(self, consumer: Consumer) -> Delivery | None:
        while not consumer.stopped:
            entry = self._pop(consumer) if consumer.has_room() else None
            if entry is not None:
                entry.state = EntryState.IN_FLIGHT
                entry.deliveries += 1
                delivery = Delivery(entry, consumer)
                if consumer.subscription.acknowledgement:
                    consumer.unacked.add(delivery)
                else:
                    delivery.open = False
                consumer.handling = delivery
                return delivery
            consumer.wakeup.wait(_IDLE_WAIT)
        return None

    def _pop(self, consumer: Consumer) -> Entry | None:
        now = time.monotonic()
        while (entry := consumer.queue.pop()) is not None:
            if not entry.expired(now):
                return entry
            entry.state = EntryState.GONE
            self._note_change()
        return None

    def _message(self, consumer: Consumer, delivery: Delivery) -> Message | None:
        """The message for a delivery, or None when its body cannot be decoded."""
        entry = delivery.entry
        subscription = consumer.subscription
        body: Any = entry.raw
        if subscription.decode:
            try:
                body = decode_body(entry.raw)
            except MessageError as exc:
                with self._locked():
                    self._undecodable(consumer, delivery, str(exc))
                return None
        return Message(
            body=body,
            raw=entry.raw,
            headers=copy_value(entry.headers),
            subscription=subscription,
            delivery_attempt=entry.deliveries,
            redelivered=entry.deliveries > 1,
            message_id=entry.message_id,
            destination=entry.destination,
            transport_data=delivery,
        )

    def _undecodable(self, consumer: Consumer, delivery: Delivery, error: str) -> None:
        """BODY-5: dead-letter it at once (DLQ-2), or drop a broadcast (BCAST-6)."""
        consumer.unacked.discard(delivery)
        consumer.handling = None
        was_open, delivery.open = delivery.open, False
        entry = delivery.entry
        if entry.broadcast:
            entry.state = EntryState.GONE
            self._log(
                logging.ERROR,
                "Dropped broadcast %s on topic %s: %s",
                entry.message_id,
                entry.destination,
                error,
            )
        elif was_open or not consumer.subscription.acknowledgement:
            self._dead_letter(entry, DeathReason.UNDECODABLE, error)
        consumer.wakeup.notify()

    # -- settling

    def settle(self, delivery: Delivery, outcome: Outcome, error: str | None) -> None:
        with self._locked():
            if not delivery.open:
                problem = (
                    f"message {delivery.entry.message_id} is no longer held by its "
                    "subscription: it went back to its queue when that ended"
                )
                raise TransportError(problem)
            self._settle(delivery, outcome, error)

    def _settle(self, delivery: Delivery, outcome: Outcome, error: str | None) -> None:
        delivery.open = False
        delivery.consumer.unacked.discard(delivery)
        entry = delivery.entry
        if outcome is Outcome.ACK:
            entry.state = EntryState.GONE
        elif outcome is Outcome.NACK:
            self._retry(entry, error or "it was nacked on its last allowed delivery")
        else:
            self._dead_letter(entry, DeathReason.REJECTED, error or "rejected")
        delivery.consumer.wakeup.notify()
        self._note_change()

    def _retry(self, entry: Entry, error: str) -> None:
        """Back to the queue for another delivery, or dead-lettered at the limit."""
        if entry.deliveries >= self.delivery_limit:
            self._dead_letter(entry, DeathReason.DELIVERY_LIMIT, error)
        elif entry.expired(time.monotonic()) or entry.queue is None:
            entry.state = EntryState.GONE
        else:
            entry.queue.push(entry)
            for consumer in entry.queue.consumers:
                consumer.wakeup.notify()

    def _dead_letter(self, entry: Entry, reason: DeathReason, error: str) -> None:
        entry.state = EntryState.GONE
        headers = add_death(
            entry.headers,
            queue=entry.destination,
            reason=reason,
            error=error,
            attempts=entry.deliveries,
        )
        dead = self._entry(
            dead_letter_queue(entry.destination),
            entry.raw,
            headers,
            entry.priority,
            None,
            False,
        )
        self._route(dead, time.monotonic())
        self._log(
            logging.ERROR,
            "Dead-lettered message %s from %s to %s (%s after %d deliveries): %s",
            entry.message_id,
            entry.destination,
            dead.destination,
            reason.value,
            entry.deliveries,
            error,
        )

    # -- closing

    def close(self, timeout: float = 5.0) -> bool:
        """End every connection and stop the broker's threads.

        The transports become FAILED. Returns False when some delivery thread was still
        in a handler after `timeout` seconds.
        """
        with self._locked():
            if self._closed:
                return True
            self._closed = True
            sessions = list(self._sessions)
            threads = [c.thread for s in sessions for c in s.consumers.values()]
            for session in sessions:
                self._end_session(session)
            self._timer_wakeup.notify_all()
            threads.append(self._timer_thread)
        for session in sessions:
            session.transport._connection_lost(
                DisconnectedError("memory broker closed")
            )
        return _join_all(threads, timeout)


def _join_all(threads: list[threading.Thread | None], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    current = threading.current_thread()
    for thread in threads:
        if thread is not None and thread is not current:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        t.name for t in threads if t is not None and t.is_alive() and t is not current
    ]
    if stuck:
        logger.warning("Memory broker threads still running after close: %s", stuck)
    return not stuck
