"""`Session`: one open connection, its shared channels and what it has declared.

Used only on the I/O thread. Queues are declared on first use (QUEUE-2) as durable
quorum queues (classic with `queue_type: classic`) whose broker-side delivery limit
and dead-letter route mirror the transport's, each with its `dlq.<name>` queue; with
`declare: false` they are only checked to exist. Topics are durable fanout exchanges.
Delays are classic queues with a message TTL that dead-letter back to the target, or,
for a queue where the site names a `delay_exchange`, that exchange of the
delayed-message plugin. Exchanges a site names are only checked, never declared.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pika.exceptions
from zocalo_core import TransportError
from zocalo_core.transport import MAX_NAME_BYTES, OutgoingMessage, dead_letter_queue

from zocalo_transport_pika._channel import ChannelHandle, Mode
from zocalo_transport_pika._codec import DELAY_QUEUE_PREFIX
from zocalo_transport_pika._loop import Chain, OnDone
from zocalo_transport_pika._settings import PikaSettings

logger = logging.getLogger(__name__)

#: The direct exchange that delayed broadcasts reach their topics through.
TOPICS_EXCHANGE = "zocalo.topics"
_DELAY_PREFIX = DELAY_QUEUE_PREFIX
_TOPIC_DELAY_PREFIX = f"{DELAY_QUEUE_PREFIX}topic."
# An idle delay queue is removed by RabbitMQ after twice its delay plus this.
_DELAY_QUEUE_SPARE_MS = 600_000
_PRECONDITION_FAILED = 406
_NOT_FOUND = 404
#: How long publishes to an exchange RabbitMQ refused fail without being tried.
_REFUSAL_MEMORY = 30.0
_REFUSED_EXCHANGE = re.compile(r"exchange '([^']*)'")


def is_temporary_name(queue: str) -> bool:
    """Whether `queue` names a temporary queue, which a send must never create."""
    return queue.startswith(("transient.", "amq."))


def name_fits(name: str) -> bool:
    return len(name.encode("utf-8")) <= MAX_NAME_BYTES


def queue_arguments(
    queue: str,
    delivery_limit: int,
    *,
    queue_type: str = "quorum",
    single_active_consumer: bool = False,
) -> dict[str, Any]:
    """The arguments of a queue the transport declares (see the module docstring)."""
    arguments: dict[str, Any] = {"x-queue-type": queue_type}
    if queue_type == "quorum":
        # RabbitMQ counts returns: a limit of n - 1 allows n deliveries.
        arguments["x-delivery-limit"] = delivery_limit - 1
    else:
        # Two levels, 0-4 and 5-9 (PRIO-1), kept strictly.
        arguments["x-max-priority"] = 1
    if single_active_consumer:
        arguments["x-single-active-consumer"] = True
    dead_letters = dead_letter_queue(queue)
    if name_fits(dead_letters):
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = dead_letters
    return arguments


def _binding(exchange: str, destination: str) -> str:
    """How a binding is remembered among the declared exchanges."""
    return f"{exchange} -> {destination}"


def _must_exist(
    handle: ChannelHandle, passive_declare: Callable[[OnDone], None], missing: str
) -> Chain[None]:
    """Run a passive declaration; a `TransportError` saying `missing` if not found."""
    try:
        yield handle.call(passive_declare)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != _NOT_FOUND:
            raise
        raise TransportError(missing) from None


class Session:
    """The state of one connection: shared channels and declaration caches."""

    def __init__(self, connection: Any, settings: PikaSettings) -> None:
        self.connection = connection
        self.settings = settings
        self.delivery_limit = settings.delivery_limit
        self._channels: dict[str, ChannelHandle] = {}
        self._queues: set[str] = set()
        #: Queues declared together with their dead-letter queues.
        self._ready_queues: set[str] = set()
        self._exchanges: set[str] = set()
        self._delays: dict[str, float] = {}
        #: Site exchanges RabbitMQ refused a publish to: when, and what it said.
        self._refusals: dict[str, tuple[float, str]] = {}

    def ready_channel(self, label: str) -> ChannelHandle | None:
        """The shared channel `label` if it is open and set up, without waiting."""
        handle = self._channels.get(label)
        return handle if handle is not None and handle.ready else None

    def channel(self, label: str, mode: Mode = Mode.PLAIN) -> Chain[ChannelHandle]:
        """The shared channel `label`, opened (again) when needed."""
        handle = self._channels.get(label)
        if handle is None or handle.closed:
            handle = ChannelHandle(self.connection, label, mode)
            self._channels[label] = handle
        yield handle.wait_ready()
        return handle

    def forget(self, name: str) -> None:
        """Declare `name` again on next use: it was found missing."""
        self._queues.discard(name)
        # Deleted together with its queue, most likely.
        self._queues.discard(dead_letter_queue(name))
        # `name` may be some queue's dead-letter queue; forgetting is rare.
        self._ready_queues.clear()
        # A queue declared again has lost its bindings too.
        self._exchanges = {
            known
            for known in self._exchanges
            if known != name and not known.endswith(_binding("", name))
        }
        self._delays.clear()

    def declaring(self, label: str) -> Chain[ChannelHandle]:
        """A new channel for declarations; the caller closes it after them.

        A refused declaration closes its channel, and with it every call waiting
        on that channel; a channel of its own keeps that from failing others.
        """
        handle = ChannelHandle(self.connection, f"declare {label}")
        yield handle.wait_ready()
        return handle

    # -- queues

    def knows_queue(self, queue: str) -> bool:
        """Whether `queue` and its dead-letter queue are declared (or checked)."""
        return queue in self._ready_queues

    def ensure_queue(
        self, queue: str, *, with_dead_letters: bool = True
    ) -> Chain[None]:
        """Declare `queue` (and its dead-letter queue) unless done already."""
        if with_dead_letters and queue in self._ready_queues:
            return
        names = [queue]
        if with_dead_letters and name_fits(dead_letter_queue(queue)):
            names.append(dead_letter_queue(queue))
        missing = [name for name in names if name not in self._queues]
        if not missing:
            return
        handle = yield from self.declaring(repr(queue))
        check = self._check_queue if not self.settings.declare else self._declare_queue
        for name in missing:
            handle = yield from check(handle, name)
            self._queues.add(name)
        handle.close_soon()
        if with_dead_letters:
            self._ready_queues.add(queue)

    def _check_queue(self, handle: ChannelHandle, queue: str) -> Chain[ChannelHandle]:
        """`declare: false`: a passive declare, which fails if `queue` is missing."""
        yield from _must_exist(
            handle,
            lambda done: handle.channel.queue_declare(
                queue, passive=True, callback=done
            ),
            f"queue {queue!r} does not exist on RabbitMQ, and this transport does "
            "not declare queues (`declare: false`: the topology is managed "
            "elsewhere); create the queue with the tools that manage it, or "
            "check the name",
        )
        return handle

    def _declare_queue(self, handle: ChannelHandle, queue: str) -> Chain[ChannelHandle]:
        settings = self.settings
        arguments = queue_arguments(
            queue,
            self.delivery_limit,
            queue_type=settings.queue_type,
            single_active_consumer=queue in settings.single_active_consumer,
        )
        try:
            yield handle.call(
                lambda done: handle.channel.queue_declare(
                    queue, durable=True, arguments=arguments, callback=done
                )
            )
            return handle
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
            refusal = exc.reply_text
        handle = yield from self.declaring(repr(queue))
        yield handle.call(
            lambda done: handle.channel.queue_declare(
                queue, passive=True, callback=done
            )
        )
        logger.warning(
            "Queue %r exists with other arguments than those this transport gives "
            "its queues (%s); it is used as it is, so RabbitMQ may count deliveries "
            "and dead-letter differently",
            queue,
            refusal,
        )
        return handle

    def forget_route(self, outgoing: OutgoingMessage) -> None:
        """Check again, on next use, everything a send of `outgoing` went through."""
        self.forget(outgoing.destination)
        if outgoing.exchange:
            self.forget(outgoing.exchange)
        if outgoing.delay and self.settings.delay_exchange:
            self.forget(self.settings.delay_exchange)

    # -- exchanges, topics and delays

    def knows_exchange(self, exchange: str) -> bool:
        return exchange in self._exchanges

    def refused(self, reply_text: str) -> None:
        """RabbitMQ refused a publish (403) with `reply_text`, naming an exchange.

        Publishes to it fail before they reach RabbitMQ for a while: each would
        close its channel, and a transaction's channel is its consumer's.
        """
        named = _REFUSED_EXCHANGE.search(reply_text)
        if named is None:
            return
        exchange = named.group(1)
        self._exchanges.discard(exchange)
        self._refusals[exchange] = (time.monotonic(), reply_text)

    def ensure_exchange(self, exchange: str, *, missing: str = "") -> Chain[None]:
        """Check that the site's `exchange` exists; it is never declared here.

        Publishing to a missing exchange would close the shared publish channel, and
        with it the confirms other senders wait for. `missing` is the error's text
        when it does not exist.
        """
        if exchange in self._exchanges:
            return
        refusal = self._refusals.get(exchange)
        if refusal is not None:
            since = time.monotonic() - refusal[0]
            if since < _REFUSAL_MEMORY:
                problem = (
                    f"RabbitMQ refused a publish to the exchange {exchange!r} "
                    f"{since:.0f} s ago ({refusal[1]}), so nothing was sent through "
                    "it; check that it is not internal and that this user may write "
                    f"to it (it is tried again {_REFUSAL_MEMORY:.0f} s after that)"
                )
                raise TransportError(problem)
            del self._refusals[exchange]
        handle = yield from self.declaring(repr(exchange))
        yield from _must_exist(
            handle,
            lambda done: handle.channel.exchange_declare(
                exchange, passive=True, callback=done
            ),
            missing
            or f"RabbitMQ has no exchange {exchange!r} in the virtual host "
            f"{self.settings.vhost!r}; nothing was sent through it",
        )
        self._exchanges.add(exchange)
        handle.close_soon()

    def ensure_plugin_delay(self, queue: str) -> Chain[None]:
        """Make the site's delayed-message exchange ready to route to `queue`.

        The exchange belongs to the site (its type, `x-delayed-message`, exists only
        with the plugin), so it is only checked. Unless the topology is managed
        elsewhere, `queue` is bound to it under its own name, once per session.
        """
        exchange = self.settings.delay_exchange
        assert exchange is not None
        yield from self.ensure_exchange(
            exchange,
            missing=(
                f"RabbitMQ has no exchange {exchange!r} (the `delay_exchange` "
                f"setting) in the virtual host {self.settings.vhost!r}, so the "
                "delayed message was not sent. The site declares it, of type "
                "x-delayed-message, which needs the rabbitmq_delayed_message_exchange "
                "plugin; without `delay_exchange` the transport uses delay queues"
            ),
        )
        binding = _binding(exchange, queue)
        if not self.settings.declare or binding in self._exchanges:
            return
        handle = yield from self.declaring(binding)
        yield handle.call(
            lambda done: handle.channel.queue_bind(
                queue, exchange, routing_key=queue, callback=done
            )
        )
        self._exchanges.add(binding)
        handle.close_soon()

    def ensure_topic(self, topic: str) -> Chain[None]:
        """Declare the fanout exchange of `topic` unless done already."""
        if topic in self._exchanges:
            return
        handle = yield from self.declaring(repr(topic))
        try:
            yield handle.call(
                lambda done: handle.channel.exchange_declare(
                    topic, exchange_type="fanout", durable=True, callback=done
                )
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
            handle = yield from self.declaring(repr(topic))
            yield handle.call(
                lambda done: handle.channel.exchange_declare(
                    topic, passive=True, callback=done
                )
            )
        self._exchanges.add(topic)
        handle.close_soon()

    def ensure_delayed_topic(self, topic: str) -> Chain[None]:
        """Bind `topic` to the exchange its delayed broadcasts arrive through."""
        yield from self.ensure_topic(topic)
        key = _binding(TOPICS_EXCHANGE, topic)
        if key in self._exchanges:
            return
        handle = yield from self.declaring(key)
        if TOPICS_EXCHANGE not in self._exchanges:
            yield handle.call(
                lambda done: handle.channel.exchange_declare(
                    TOPICS_EXCHANGE, exchange_type="direct", durable=True, callback=done
                )
            )
            self._exchanges.add(TOPICS_EXCHANGE)
        yield handle.call(
            lambda done: handle.channel.exchange_bind(
                topic, TOPICS_EXCHANGE, routing_key=topic, callback=done
            )
        )
        self._exchanges.add(key)
        handle.close_soon()

    def ensure_delay(self, delay_ms: int, *, for_topics: bool) -> Chain[str]:
        """The exchange to publish a message delayed by `delay_ms` to.

        The message's routing key is its target (queue or topic); when the delay
        queue's TTL ends RabbitMQ dead-letters it with that key to the default
        exchange (queues) or to `zocalo.topics` (topics). The queue is declared
        again well before its idle expiry, so it never vanishes with messages in it.
        """
        prefix = _TOPIC_DELAY_PREFIX if for_topics else _DELAY_PREFIX
        name = f"{prefix}{delay_ms}"
        expires = 2 * delay_ms + _DELAY_QUEUE_SPARE_MS
        declared_at = self._delays.get(name)
        if declared_at is not None and time.monotonic() - declared_at < expires / 2000:
            return name
        arguments: dict[str, Any] = {
            "x-message-ttl": delay_ms,
            "x-expires": expires,
            "x-dead-letter-exchange": TOPICS_EXCHANGE if for_topics else "",
        }
        handle = yield from self.declaring(name)
        yield handle.call(
            lambda done: handle.channel.exchange_declare(
                name, exchange_type="fanout", auto_delete=True, callback=done
            )
        )
        yield handle.call(
            lambda done: handle.channel.queue_declare(
                name, durable=True, arguments=arguments, callback=done
            )
        )
        yield handle.call(
            lambda done: handle.channel.queue_bind(name, name, callback=done)
        )
        self._delays[name] = time.monotonic()
        handle.close_soon()
        return name
