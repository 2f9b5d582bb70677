"""`Consumer`: what one subscription is on RabbitMQ, and its delivery thread.

Each subscription has a channel of its own (with `basic.qos` set to its prefetch), so
its acknowledgements go on the channel that received its deliveries, and one
delivery thread, so a slow handler holds up neither the I/O thread (nor with it the
heartbeats) nor another subscription (THREAD-3). The I/O thread only puts deliveries
in the consumer's inbox; the delivery thread reads them, builds the `Message`, and
calls the handler through `Transport._deliver`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from zocalo_core import MessageError, TransportError
from zocalo_core.transport import (
    DeathReason,
    Message,
    Subscription,
    SubscriptionKind,
    decode_body,
)

from zocalo_transport_pika._channel import ChannelHandle, guarded
from zocalo_transport_pika._codec import Incoming, decode_properties, with_broker_deaths
from zocalo_transport_pika._loop import Chain, run_chain
from zocalo_transport_pika._session import Session

if TYPE_CHECKING:
    from zocalo_transport_pika._transport import PikaTransport

logger = logging.getLogger(__name__)

# Subscriptions without acknowledgement are acked as each message is taken for its
# handler; this many may wait in the inbox meanwhile, so memory stays bounded.
UNACKNOWLEDGED_WINDOW = 100
# The delivery thread wakes this often without news, to notice that it should stop.
_IDLE_WAKEUP = 0.5
_JOIN_TIMEOUT = 2.0
# Pauses between attempts to consume again from a queue RabbitMQ cancelled.
_FIRST_RESUBSCRIBE_DELAY = 0.25
_MAX_RESUBSCRIBE_DELAY = 5.0


@dataclasses.dataclass(frozen=True)
class Inbound:
    """A delivery as the I/O thread hands it to the delivery thread."""

    handle: ChannelHandle
    delivery_tag: int
    redelivered: bool
    properties: Any
    body: bytes


@dataclasses.dataclass(frozen=True, eq=False)
class Delivery:
    """`Message.transport_data`: where a message came from, to settle it there."""

    consumer: Consumer
    handle: ChannelHandle
    delivery_tag: int

    def current(self) -> bool:
        """False once its channel has closed: RabbitMQ delivers it again anyway."""
        return not self.handle.closed and self.handle is self.consumer.handle


class Consumer:
    """The broker side and the delivery thread of one subscription."""

    def __init__(self, transport: PikaTransport, subscription: Subscription) -> None:
        self.transport = transport
        self.subscription = subscription
        #: The queue consumed; a broadcast subscription's is named by RabbitMQ.
        self.queue = subscription.destination
        self.handle: ChannelHandle | None = None
        self.consumer_tag = ""
        #: Deliveries counted here, for queues that do not count them (classic).
        self.returned_attempts: dict[str, int] = {}
        self._inbox: queue.SimpleQueue[Inbound | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._restarts: list[float] = []
        self._thread = threading.Thread(
            target=self._run,
            name=f"zocalo pika {subscription.kind.value} {subscription.destination}",
            daemon=True,
        )

    def __repr__(self) -> str:
        return f"<Consumer of {self.subscription!r}>"

    # -- on the I/O thread

    def start_chain(self, session: Session) -> Chain[None]:
        """Open a channel, declare what is needed and start consuming."""
        subscription = self.subscription
        handle = ChannelHandle(
            session.connection,
            f"subscription {subscription.id} to {subscription.destination!r}",
        )
        try:
            yield handle.wait_ready()
            prefetch = (
                subscription.prefetch
                if subscription.acknowledgement
                else UNACKNOWLEDGED_WINDOW
            )
            yield handle.call(
                lambda done: handle.channel.basic_qos(
                    prefetch_count=prefetch, callback=done
                )
            )
            yield from self._declare(session, handle)
            yield from self._consume(handle)
        except Exception:
            yield handle.close()
            raise
        if not subscription.active:
            # It ended (or timed out) while this chain ran: give its messages back.
            yield handle.close()

    def _declare(self, session: Session, handle: ChannelHandle) -> Chain[None]:
        kind = self.subscription.kind
        # Subscribing is rare: declare again, in case it was deleted since.
        session.forget(self.subscription.destination)
        if kind is SubscriptionKind.QUEUE:
            yield from session.ensure_queue(self.queue)
        elif kind is SubscriptionKind.TEMPORARY:
            yield handle.call(
                lambda done: handle.channel.queue_declare(
                    self.queue, exclusive=True, auto_delete=True, callback=done
                )
            )
        else:
            topic = self.subscription.destination
            yield from session.ensure_topic(topic)
            frame = yield handle.call(
                lambda done: handle.channel.queue_declare(
                    "", exclusive=True, auto_delete=True, callback=done
                )
            )
            self.queue = frame.method.queue
            yield handle.call(
                lambda done: handle.channel.queue_bind(self.queue, topic, callback=done)
            )

    def _consume(self, handle: ChannelHandle) -> Chain[None]:
        tag = f"zocalo.{self.subscription.id}.{uuid.uuid4().hex[:12]}"
        handle.add_close_hook(self.transport._consumer_channel_closed)
        handle.channel.add_on_cancel_callback(guarded(self._cancelled_by_broker))
        yield handle.call(
            lambda done: handle.channel.basic_consume(
                self.queue,
                guarded(functools.partial(self._on_message, handle)),
                consumer_tag=tag,
                callback=done,
            )
        )
        self.consumer_tag = tag
        self.handle = handle

    def _on_message(
        self,
        handle: ChannelHandle,
        channel: Any,
        method: Any,
        properties: Any,
        body: bytes,
    ) -> None:
        self._inbox.put(
            Inbound(handle, method.delivery_tag, method.redelivered, properties, body)
        )

    def _cancelled_by_broker(self, frame: Any) -> None:
        """RabbitMQ ended the consumer (its queue deleted, its leader moved)."""
        session = self.transport._keeper.current_session()
        if session is None or not self.subscription.active or self._stopping.is_set():
            return
        timeout = self.transport.settings.cancelled_consumer_timeout
        logger.error(
            "RabbitMQ cancelled subscription %s to queue %r (was the queue deleted, "
            "or its leader moved?); subscribing again for up to %g s",
            self.subscription.id,
            self.queue,
            timeout,
            extra={"queue": self.queue},
        )
        if self.handle is not None:
            # Its unsettled messages go back to the queue, if the queue is there.
            self.handle.close_soon()
        deadline = time.monotonic() + timeout
        self._resubscribe(session, deadline, _FIRST_RESUBSCRIBE_DELAY)

    def _resubscribe(self, session: Session, deadline: float, delay: float) -> None:
        keeper = self.transport._keeper
        if (
            keeper.current_session() is not session
            or not self.subscription.active
            or self._stopping.is_set()
        ):
            # Ended, or the connection went: a reconnection subscribes it anew.
            return
        run_chain(
            self.start_chain(session),
            lambda _: logger.warning(
                "Subscription %s to %r consumes again after RabbitMQ cancelled it",
                self.subscription.id,
                self.subscription.destination,
            ),
            lambda exc: self._resubscribe_failed(session, deadline, delay, exc),
        )

    def _resubscribe_failed(
        self, session: Session, deadline: float, delay: float, exc: BaseException
    ) -> None:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            logger.info(
                "Could not subscribe to %r again yet (%s); retrying in %.2f s",
                self.subscription.destination,
                exc,
                min(delay, remaining),
            )
            next_delay = min(2 * delay, _MAX_RESUBSCRIBE_DELAY)
            self.transport._keeper.call_later(
                min(delay, remaining),
                lambda: self._resubscribe(session, deadline, next_delay),
            )
            return
        timeout = self.transport.settings.cancelled_consumer_timeout
        problem = (
            f"RabbitMQ cancelled subscription {self.subscription.id} to queue "
            f"{self.subscription.destination!r} and it could not be subscribed again "
            f"within `cancelled_consumer_timeout` ({timeout:g} s): {exc}; restore "
            "the queue (or raise the setting) and connect again"
        )
        logger.error("%s", problem, extra={"queue": self.subscription.destination})
        failure = TransportError(problem)
        failure.__cause__ = exc
        self.transport._keeper.fail_from_io(failure)

    def stop_chain(self) -> Chain[None]:
        """Stop consuming; unsettled messages go back (a temporary queue goes)."""
        handle = self.handle
        if handle is None or handle.closed:
            return
        # pika never answers the cancel of a consumer the broker cancelled already.
        if self.consumer_tag in handle.channel.consumer_tags:
            yield handle.call(
                lambda done: handle.channel.basic_cancel(
                    self.consumer_tag, callback=done
                )
            )
        if self.subscription.kind is SubscriptionKind.TEMPORARY:
            yield handle.call(
                lambda done: handle.channel.queue_delete(self.queue, callback=done)
            )
        yield handle.close()

    def may_restart(self) -> bool:
        """Whether another restart after a channel error is sensible (3 a minute)."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60.0]
        self._restarts.append(now)
        return len(self._restarts) <= 3

    # -- the delivery thread

    def start_thread(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Deliver nothing more; what waits in the inbox goes back with the channel."""
        self._stopping.set()
        self._inbox.put(None)

    def join(self) -> None:
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(_JOIN_TIMEOUT)

    def on_delivery_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        inbox = self._inbox
        while not self._stopping.is_set():
            if inbox.empty():
                # Acks deferred by this thread must not wait for the next delivery.
                self.transport._keeper.flush()
            try:
                inbound = inbox.get(timeout=_IDLE_WAKEUP)
            except queue.Empty:
                if not self.subscription.active:
                    return
                continue
            if inbound is None or self._stopping.is_set():
                return
            try:
                self._handle(inbound)
            except Exception:
                logger.exception(
                    "Could not handle a delivery of %r", self.subscription.destination
                )

    def _handle(self, inbound: Inbound) -> None:
        subscription = self.subscription
        if not subscription.active or inbound.handle is not self.handle:
            return
        incoming = decode_properties(inbound.properties)
        delivery = Delivery(self, inbound.handle, inbound.delivery_tag)
        if not subscription.acknowledgement:
            self.transport._ack_on_take(delivery)
        message = self._message(incoming, inbound, delivery)
        if incoming.expired():
            logger.debug("Dropped %r: it expired", message)
            if subscription.acknowledgement:
                self.transport._ack_on_take(delivery)
            return
        if not self._usable(message):
            return
        self.transport._deliver(message)

    def _message(
        self, incoming: Incoming, inbound: Inbound, delivery: Delivery
    ) -> Message:
        message_id = incoming.message_id or f"{self.queue}.{inbound.delivery_tag}"
        headers = incoming.headers
        if incoming.broker_deaths:
            limit = self.transport.delivery_limit
            headers = with_broker_deaths(headers, incoming.broker_deaths, limit)
        return Message(
            body=inbound.body,
            raw=inbound.body,
            headers=headers,
            subscription=self.subscription,
            delivery_attempt=self._attempt(incoming, inbound.redelivered, message_id),
            redelivered=inbound.redelivered,
            message_id=message_id,
            destination=self.subscription.destination,
            transport_data=delivery,
        )

    def _attempt(self, incoming: Incoming, redelivered: bool, message_id: str) -> int:
        if incoming.delivery_count is not None:
            return incoming.delivery_count + 1
        known = self.returned_attempts.get(message_id)
        if known is not None:
            return known + 1
        return 2 if redelivered else 1

    def _usable(self, message: Message) -> bool:
        """Decode the body; dead-letter (or for broadcasts drop) what cannot go on."""
        subscription = self.subscription
        broadcast = subscription.kind is SubscriptionKind.BROADCAST
        limit = self.transport.delivery_limit
        if subscription.acknowledgement and message.delivery_attempt > limit:
            error = (
                f"delivered {message.delivery_attempt} times, more than the delivery "
                f"limit of {limit} (the queue's own limit is higher)"
            )
            self.transport._dead_letter_on_delivery(
                message, DeathReason.DELIVERY_LIMIT, error
            )
            return False
        if not subscription.decode:
            return True
        try:
            message.body = decode_body(message.raw)
        except MessageError as exc:
            if broadcast:
                logger.error(
                    "Dropped broadcast %s on topic %r: %s",
                    message.message_id,
                    subscription.destination,
                    exc,
                    extra={"queue": subscription.destination},
                )
            else:
                self.transport._dead_letter_on_delivery(
                    message, DeathReason.UNDECODABLE, str(exc)
                )
            return False
        return True
