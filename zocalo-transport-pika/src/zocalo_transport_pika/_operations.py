"""The chains behind sending, settling and committing, run on the I/O thread.

Plain sends go on one shared channel in publisher-confirm mode and end with the
broker's confirm; RabbitMQ confirms many at once when many are in flight. A dead
letter is confirmed in `dlq.<queue>` before its original is acked, so nothing is lost
in between. A transaction keeps its work in the transport until commit, then puts it
on its channel in one burst that ends with `tx.commit`: no other work can slip into
it, and nothing of it is on the wire before the commit.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import pika.exceptions
from zocalo_core import TransportError
from zocalo_core.transport import (
    DeathReason,
    Message,
    OutgoingMessage,
    add_death,
    dead_letter_queue,
)

from zocalo_transport_pika._channel import ChannelHandle, Mode
from zocalo_transport_pika._codec import (
    delay_bucket_ms,
    delay_ms,
    encode_properties,
    new_message_id,
)
from zocalo_transport_pika._consumer import Consumer, Delivery
from zocalo_transport_pika._loop import Chain
from zocalo_transport_pika._session import Session, is_temporary_name, name_fits

logger = logging.getLogger(__name__)

PUBLISH_CHANNEL = "publish"
#: Sends through exchanges the site owns go on a channel of their own: a publish
#: RabbitMQ refuses there (a deleted or internal exchange) closes only that channel.
SITE_EXCHANGE_CHANNEL = "publish through site exchanges"
NOT_FOUND = 404
ACCESS_REFUSED = 403
#: The longest delay the delayed-message plugin holds (its x-delay is 32 bits).
_PLUGIN_MAX_DELAY_MS = 2**32 - 1
TRANSACTION_CHANNEL = "send-only transactions"


@dataclasses.dataclass(frozen=True)
class Route:
    """Where and how to publish one message."""

    exchange: str
    routing_key: str
    mandatory: bool
    persistent: bool
    broker_ttl: bool
    #: Classic queues are declared with two priority levels (see `_codec`).
    two_priority_levels: bool = False
    #: Through the delayed-message plugin, which reads the delay from a header.
    delay_header: bool = False
    #: Through an exchange the send named (EXCH-1).
    named_exchange: bool = False

    @property
    def channel_label(self) -> str:
        """The shared confirm channel this route publishes on."""
        site_owned = self.delay_header or self.named_exchange
        return SITE_EXCHANGE_CHANNEL if site_owned else PUBLISH_CHANNEL


@dataclasses.dataclass(frozen=True)
class Settlement:
    """What settling one message does; `dead_letter` is set to dead-letter it."""

    message: Message
    requeue: bool = False
    dead_letter: DeathReason | None = None
    error: str = ""
    #: False for a message that was acked when it was taken (no acknowledgement).
    ack: bool = True

    @property
    def delivery(self) -> Delivery:
        delivery = self.message.transport_data
        if not isinstance(delivery, Delivery):
            raise TransportError(f"{self.message!r} was not delivered by RabbitMQ")
        return delivery


@dataclasses.dataclass
class TransactionWork:
    """`Transaction.transport_data`: what a transaction will do at commit."""

    sends: list[tuple[OutgoingMessage, bool]] = dataclasses.field(default_factory=list)
    settlements: list[Settlement] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Unroutable:
    """A message RabbitMQ returned, for the transport to report."""

    destination: str
    reason: str
    broadcast: bool
    #: The exchange it went through, "" for none or a topic's own.
    exchange: str = ""
    #: The message itself, to keep it in a dead-letter queue.
    outgoing: OutgoingMessage | None = None

    @classmethod
    def of(cls, outgoing: OutgoingMessage, reason: str, broadcast: bool) -> Unroutable:
        return cls(outgoing.destination, reason, broadcast, outgoing.exchange, outgoing)

    def describe(self) -> str:
        if self.exchange:
            return f"{self.destination!r} through the exchange {self.exchange!r}"
        return repr(self.destination)


def prepare_route(
    session: Session, outgoing: OutgoingMessage, broadcast: bool
) -> Chain[Route]:
    """Declare what `outgoing` needs, and say where to publish it."""
    target = outgoing.destination
    levels = session.settings.queue_type == "classic"
    if outgoing.exchange:
        # Where it goes is the exchange's business (EXCH-1); it must exist.
        yield from session.ensure_exchange(outgoing.exchange)
        return Route(
            outgoing.exchange, target, True, True, False, levels, named_exchange=True
        )
    if broadcast:
        if outgoing.delay:
            yield from session.ensure_delayed_topic(target)
        else:
            yield from session.ensure_topic(target)
    elif not is_temporary_name(target):
        yield from session.ensure_queue(target)
    plugin = session.settings.delay_exchange
    if plugin and _plugin_can_delay(outgoing, broadcast):
        yield from session.ensure_plugin_delay(target)
        return Route(plugin, target, True, True, False, levels, delay_header=True)
    if outgoing.delay:
        bucket_ms = delay_bucket_ms(outgoing.delay)
        exchange = yield from session.ensure_delay(bucket_ms, for_topics=broadcast)
        return Route(exchange, target, True, not broadcast, False, levels)
    if broadcast:
        return Route(target, "", False, False, True)
    return Route("", target, True, True, is_temporary_name(target), levels)


def _plugin_can_delay(outgoing: OutgoingMessage, broadcast: bool) -> bool:
    """Whether the delayed-message plugin can hold `outgoing` (else: delay queues).

    Not broadcasts, nor temporary queues, which another connection cannot bind;
    nor delays beyond the plugin's longest.
    """
    return (
        bool(outgoing.delay)
        and not broadcast
        and not is_temporary_name(outgoing.destination)
        and delay_ms(outgoing.delay) <= _PLUGIN_MAX_DELAY_MS
    )


def _known_route(
    session: Session, outgoing: OutgoingMessage, broadcast: bool
) -> Route | None:
    """The route of a plain send to a declared queue, or None to prepare one.

    Most sends are of this kind; finding them without a chain saves the I/O thread
    work on every message.
    """
    target = outgoing.destination
    if broadcast or outgoing.delay:
        return None
    if outgoing.exchange:
        if not session.knows_exchange(outgoing.exchange):
            return None
    elif not session.knows_queue(target):
        return None
    levels = session.settings.queue_type == "classic"
    named = bool(outgoing.exchange)
    return Route(
        outgoing.exchange, target, True, True, False, levels, named_exchange=named
    )


def _properties(
    outgoing: OutgoingMessage, route: Route, message_id: str, now: float | None = None
) -> Any:
    return encode_properties(
        outgoing,
        message_id=message_id,
        persistent=route.persistent,
        broker_ttl=route.broker_ttl,
        two_priority_levels=route.two_priority_levels,
        delay_header=route.delay_header,
        now=now,
    )


def publish_chain(
    session: Session, outgoing: OutgoingMessage, broadcast: bool
) -> Chain[Unroutable | None]:
    """Publish `outgoing` and wait for its confirm; say if it came back unroutable.

    A queue or topic may have been deleted since it was declared: a message that
    comes back unroutable, or an exchange that is not found, is declared again and
    the message published once more. Through a named exchange, a message that comes
    back has nowhere else to go: the exchange has no binding for its key.
    """
    for last_try in (False, True):
        try:
            returned = yield from _publish_once(session, outgoing, broadcast)
        except pika.exceptions.ChannelClosedByBroker as exc:
            _note_refusal(session, exc, [outgoing])
            if last_try or exc.reply_code != NOT_FOUND:
                raise
            continue
        if returned is None:
            return None
        if last_try or outgoing.exchange or is_temporary_name(outgoing.destination):
            return Unroutable.of(outgoing, str(returned), broadcast)
        session.forget(outgoing.destination)
    return None


def _publish_once(
    session: Session, outgoing: OutgoingMessage, broadcast: bool
) -> Chain[str | None]:
    route = _known_route(session, outgoing, broadcast)
    if route is None:
        route = yield from prepare_route(session, outgoing, broadcast)
    label = route.channel_label
    publisher = session.ready_channel(label)
    if publisher is None:
        publisher = yield from session.channel(label, Mode.CONFIRM)
    message_id = new_message_id()
    returned: str | None = yield publisher.publish_confirmed(
        route.exchange,
        route.routing_key,
        outgoing.raw,
        _properties(outgoing, route, message_id),
        route.mandatory,
    )
    return returned


def _note_refusal(
    session: Session,
    exc: pika.exceptions.ChannelClosedByBroker,
    sent: list[OutgoingMessage],
) -> None:
    """What a publish that closed its channel tells about where it went."""
    if exc.reply_code == NOT_FOUND:
        for outgoing in sent:
            session.forget_route(outgoing)
    elif exc.reply_code == ACCESS_REFUSED:
        session.refused(exc.reply_text)


def dead_letter_properties(settlement: Settlement) -> tuple[str, Any]:
    """The dead-letter queue and properties of the dead letter of a settlement."""
    message = settlement.message
    if settlement.dead_letter is None:
        raise TransportError(f"{message!r} is not to be dead-lettered")
    queue = message.destination
    dead_letters = dead_letter_queue(queue)
    if not name_fits(dead_letters):
        problem = (
            f"cannot dead-letter {message!r}: the name {dead_letters[:40]!r}... of its "
            "dead-letter queue is over 255 bytes; use a shorter queue name"
        )
        raise TransportError(problem)
    headers = add_death(
        message.headers,
        queue=queue,
        reason=settlement.dead_letter,
        error=settlement.error,
        attempts=message.delivery_attempt,
    )
    outgoing = OutgoingMessage(
        destination=dead_letters, raw=message.raw, headers=headers
    )
    route = Route("", dead_letters, True, True, False)
    return dead_letters, _properties(outgoing, route, message.message_id)


def settle_now(settlement: Settlement) -> bool:
    """On the I/O thread: ack or nack one message outside a transaction, without
    waiting (RabbitMQ does not answer either); False if its channel is gone.

    On a channel that once ran a transaction the ack is committed at once.
    """
    if settlement.dead_letter is not None:
        raise TransportError(f"{settlement.message!r} is to be dead-lettered")
    delivery = settlement.delivery
    if not delivery.current():
        return False
    handle = delivery.handle
    _settle_soon_on(handle, lambda: _apply(handle, settlement))
    return True


def _settle_soon_on(handle: ChannelHandle, settle: Callable[[], object]) -> None:
    """On the I/O thread: `settle()` now, waiting for nothing; on a channel that once
    ran a transaction, as a commit of its own.

    A failed commit closes the channel, so what it settled is delivered again.
    """
    if not handle.tx_mode:
        settle()
        return
    handle.commit(settle)(
        lambda _: None,
        lambda exc: logger.warning("A commit on %s failed: %s", handle.label, exc),
    )


def settle_chain(session: Session, settlement: Settlement) -> Chain[bool]:
    """Dead-letter one message outside a transaction; False if its channel is gone.

    The dead letter is confirmed before the original is acked (or, on a channel in
    transaction mode, both are committed together).
    """
    delivery = settlement.delivery
    handle = delivery.handle
    if not delivery.current():
        return False
    dead_letters, properties = dead_letter_properties(settlement)
    yield from session.ensure_queue(dead_letters, with_dead_letters=False)
    if handle.tx_mode and settlement.ack:

        def put() -> None:
            handle.publish("", dead_letters, settlement.message.raw, properties, True)
            _apply(handle, settlement)

        yield handle.commit(put)
        _check_returned(handle, [properties.message_id], dead_letters)
        return True
    publisher = yield from session.channel(PUBLISH_CHANNEL, Mode.CONFIRM)
    returned = yield publisher.publish_confirmed(
        "", dead_letters, settlement.message.raw, properties, True
    )
    if returned is not None:
        raise TransportError(f"RabbitMQ did not route the dead letter: {returned}")
    if settlement.ack and not delivery.current():
        return False
    _apply(handle, settlement)
    return True


def _apply(handle: ChannelHandle, settlement: Settlement) -> None:
    """Ack or nack on the channel the message came on (no waiting: no reply)."""
    if not settlement.ack:
        return
    delivery = settlement.delivery
    if settlement.requeue:
        handle.channel.basic_nack(delivery.delivery_tag, requeue=True)
        message = settlement.message
        delivery.consumer.returned_attempts[message.message_id] = (
            message.delivery_attempt
        )
    else:
        handle.channel.basic_ack(delivery.delivery_tag)
        delivery.consumer.returned_attempts.pop(settlement.message.message_id, None)


def _check_returned(handle: ChannelHandle, message_ids: list[str], queue: str) -> None:
    returned = handle.take_returned(message_ids)
    if returned:
        reason = next(iter(returned.values()))
        raise TransportError(f"RabbitMQ did not route a message to {queue!r}: {reason}")


def commit_chain(
    session: Session, work: TransactionWork, consumer: Consumer | None
) -> Chain[list[Unroutable]]:
    """Put a transaction's work on its channel in one burst and commit it."""
    routes = []
    for outgoing, broadcast in work.sends:
        route = _known_route(session, outgoing, broadcast)
        if route is None:
            route = yield from prepare_route(session, outgoing, broadcast)
        routes.append(route)
    dead_letters = []
    for settlement in work.settlements:
        if settlement.dead_letter is not None:
            dead_letters.append(dead_letter_properties(settlement))
            yield from session.ensure_queue(
                dead_letters[-1][0], with_dead_letters=False
            )
    handle = yield from _transaction_channel(session, work, consumer)
    if not handle.tx_mode:
        # Set before tx.select goes out, so that a plain ack from now on commits.
        handle.tx_mode = True
        yield handle.call(lambda done: handle.channel.tx_select(callback=done))

    try:
        # Checked when the burst goes out: an earlier commit may have been waited for.
        published: list[tuple[str, OutgoingMessage, bool]] = yield handle.commit(
            lambda: _put_work(handle, work, routes, dead_letters),
            check=lambda: _check_current(work, handle),
        )
    except pika.exceptions.ChannelClosedByBroker as exc:
        _note_refusal(session, exc, [outgoing for outgoing, _ in work.sends])
        raise
    returned = handle.take_returned([message_id for message_id, _, _ in published])
    return [
        Unroutable.of(outgoing, returned[message_id], broadcast)
        for message_id, outgoing, broadcast in published
        if message_id in returned
    ]


def keep_unroutable_chain(session: Session, lost: list[Unroutable]) -> Chain[list[str]]:
    """Put committed messages that reached no queue in `dlq.<routing key>`.

    RabbitMQ tells only at the commit, when the rest of the transaction has taken
    effect, that a send of it was routed nowhere; kept as a dead letter, it can be
    sent again once the routing is mended. Returns the queues used.
    """
    kept = []
    for item in lost:
        dead_letters = dead_letter_queue(item.destination)
        if item.outgoing is None or not name_fits(dead_letters):
            continue
        headers = add_death(
            item.outgoing.headers,
            queue=item.destination,
            reason=DeathReason.UNROUTABLE,
            error=f"RabbitMQ routed it nowhere at the commit: {item.reason}",
            attempts=0,
            exchange=item.exchange,
        )
        letter = OutgoingMessage(
            destination=dead_letters, raw=item.outgoing.raw, headers=headers
        )
        yield from session.ensure_queue(dead_letters, with_dead_letters=False)
        publisher = yield from session.channel(PUBLISH_CHANNEL, Mode.CONFIRM)
        route = Route("", dead_letters, True, True, False)
        returned = yield publisher.publish_confirmed(
            "",
            dead_letters,
            letter.raw,
            _properties(letter, route, new_message_id()),
            True,
        )
        if returned is None:
            kept.append(dead_letters)
    return kept


def _put_work(
    handle: ChannelHandle,
    work: TransactionWork,
    routes: list[Route],
    dead_letters: list[tuple[str, Any]],
) -> list[tuple[str, OutgoingMessage, bool]]:
    """Publish and settle without waiting, so nothing else comes in between."""
    now = time.time()
    # Encoded before anything is published: a failure must leave nothing behind.
    encoded = []
    for (outgoing, broadcast), route in zip(work.sends, routes, strict=True):
        message_id = new_message_id()
        properties = _properties(outgoing, route, message_id, now)
        encoded.append((message_id, outgoing, broadcast, route, properties))
    published: list[tuple[str, OutgoingMessage, bool]] = []
    for message_id, outgoing, broadcast, route, properties in encoded:
        handle.publish(
            route.exchange, route.routing_key, outgoing.raw, properties, route.mandatory
        )
        published.append((message_id, outgoing, broadcast))
    dead_letter_iter = iter(dead_letters)
    for settlement in work.settlements:
        if settlement.dead_letter is not None:
            queue, properties = next(dead_letter_iter)
            handle.publish("", queue, settlement.message.raw, properties, True)
        _apply(handle, settlement)
    return published


def _transaction_channel(
    session: Session, work: TransactionWork, consumer: Consumer | None
) -> Chain[ChannelHandle]:
    if consumer is None:
        return (yield from session.channel(TRANSACTION_CHANNEL, Mode.TRANSACTION))
    handle = consumer.handle
    if handle is None or handle.closed:
        raise TransportError(
            f"cannot commit: the channel of {consumer.subscription!r} has closed, so "
            "nothing of the transaction was done; its messages come again"
        )
    return handle


def _check_current(work: TransactionWork, handle: ChannelHandle) -> None:
    for settlement in work.settlements:
        if (
            not settlement.delivery.current()
            or settlement.delivery.handle is not handle
        ):
            raise TransportError(
                f"cannot commit: {settlement.message!r} was delivered on a channel "
                "that has closed since (the connection was restored), so nothing of "
                "the transaction was done; RabbitMQ delivers the message again"
            )


def ack_on_take_step(delivery: Delivery) -> None:
    """On the I/O thread: ack a message of a subscription without acknowledgement."""
    handle = delivery.handle
    if not delivery.current():
        return
    _settle_soon_on(handle, lambda: handle.channel.basic_ack(delivery.delivery_tag))
