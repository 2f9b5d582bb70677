"""How messages are laid out on RabbitMQ: AMQP properties out, `Message` fields in.

Application headers travel as JSON text in the one AMQP header `x-zocalo-headers`,
because AMQP tables cannot carry every header value faithfully (pika refuses floats,
and strings and bytes blur). Headers that AMQP can carry are mirrored as native AMQP
headers too, so that services of the existing system read them (`workflows-recipe`).
A message without `x-zocalo-headers` came from another client: its native headers are
the application's, less the broker's bookkeeping.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pika
from zocalo_core import MessageError
from zocalo_core.transport import (
    DeathReason,
    HeaderValue,
    OutgoingMessage,
    add_death,
)

logger = logging.getLogger(__name__)

#: The AMQP header that carries the application's headers as JSON text.
HEADERS_HEADER = "x-zocalo-headers"
#: The AMQP header with the time a message expires, in ms since the epoch.
EXPIRES_HEADER = "x-zocalo-expires"
#: Delay queues are named with this prefix (see `_session`).
DELAY_QUEUE_PREFIX = "zocalo.delay."
#: The header RabbitMQ's quorum queues count deliveries in, from 0.
DELIVERY_COUNT_HEADER = "x-delivery-count"
#: The lowest priority of the upper of the two levels (PRIO-1).
HIGH_PRIORITY = 5

#: The header the delayed-message plugin reads the delay from, in ms.
DELAY_HEADER = "x-delay"

# Names RabbitMQ (or its delayed-message plugin) interprets or adds itself; never
# mirrored, never shown as headers.
_BROKER_NAMES = frozenset({"CC", "BCC", "x-death", DELIVERY_COUNT_HEADER, DELAY_HEADER})
_BROKER_PREFIXES = ("x-first-death-", "x-last-death-", "x-zocalo-")
# Properties and headers must fit in one AMQP frame (128 KiB by default) with room
# for the other properties; the mirror is dropped first.
_MAX_HEADER_BYTES = 120_000
_MAX_MIRROR_BYTES = 30_000
_SHORT_STRING = 255

_BROKER_DEATH_REASONS = {
    "delivery_limit": DeathReason.DELIVERY_LIMIT,
    "rejected": DeathReason.REJECTED,
    "maxlen": DeathReason.REJECTED,
}


def new_message_id() -> str:
    return uuid.uuid4().hex


def encode_properties(
    outgoing: OutgoingMessage,
    *,
    message_id: str,
    persistent: bool,
    broker_ttl: bool,
    two_priority_levels: bool = False,
    delay_header: bool = False,
    now: float | None = None,
) -> pika.BasicProperties:
    """The AMQP properties for `outgoing`, sent now (or at `now`, a time.time()).

    The priority goes as it is (0 to 9): RabbitMQ's quorum queues from 4.0 on favour
    5-9 over 0-4 (2:1, not strictly), and older ones ignore it. Classic queues are
    declared with two levels (`x-max-priority` 1), and `two_priority_levels` sends
    their level: 1 for 5-9, 0 for 0-4.

    `broker_ttl` asks RabbitMQ itself to drop the message when it expires; it is
    only right for queues without a dead-letter exchange, which would otherwise
    dead-letter expired messages (and never for delayed ones, whose wait in a delay
    queue would then end early).

    `delay_header` gives the delay, in whole ms, to the delayed-message plugin.
    """
    sent_at = time.time() if now is None else now
    headers: dict[str, Any] = {}
    if outgoing.headers:
        headers[HEADERS_HEADER] = _headers_json(outgoing.headers)
        headers.update(_native_mirror(outgoing.headers))
    expiration = None
    if outgoing.expiration is not None:
        headers[EXPIRES_HEADER] = int((sent_at + outgoing.expiration) * 1000)
        if broker_ttl and not outgoing.delay:
            expiration = str(max(1, math.ceil(outgoing.expiration * 1000)))
    if delay_header:
        headers[DELAY_HEADER] = delay_ms(outgoing.delay)
    return pika.BasicProperties(
        headers=headers or None,
        delivery_mode=2 if persistent else 1,
        message_id=message_id,
        timestamp=int(sent_at),
        expiration=expiration,
        priority=amqp_priority(outgoing.priority, two_priority_levels),
    )


def amqp_priority(priority: int, two_levels: bool) -> int:
    """The AMQP priority of a message of `priority` (0 to 9); see above."""
    if two_levels:
        return 1 if priority >= HIGH_PRIORITY else 0
    return priority


def check_fits(outgoing: OutgoingMessage) -> None:
    """Raise `MessageError` now if `outgoing` cannot be sent (its headers are large)."""
    if outgoing.headers:
        _headers_json(outgoing.headers)


def _headers_json(headers: Mapping[str, HeaderValue]) -> str:
    text = json.dumps(headers, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > _MAX_HEADER_BYTES:
        problem = (
            f"the headers are over {_MAX_HEADER_BYTES} bytes as JSON, more than one "
            "AMQP frame holds; put large data in the body instead"
        )
        raise MessageError(problem)
    return text


def _native_mirror(headers: Mapping[str, HeaderValue]) -> dict[str, Any]:
    mirror = {
        name: value
        for name, value in headers.items()
        if _mirrorable_name(name) and _amqp_carries(value)
    }
    size = len(json.dumps(mirror, ensure_ascii=False).encode("utf-8"))
    return mirror if size <= _MAX_MIRROR_BYTES else {}


def _mirrorable_name(name: str) -> bool:
    return (
        name not in _BROKER_NAMES
        and not name.startswith("x-")
        and len(name.encode("utf-8")) <= _SHORT_STRING
    )


def _amqp_carries(value: HeaderValue) -> bool:
    """Whether pika encodes `value` and decodes it as the same Python value."""
    if isinstance(value, float):
        return False
    if isinstance(value, list):
        return all(_amqp_carries(item) for item in value)
    if isinstance(value, dict):
        return all(
            len(key.encode("utf-8")) <= _SHORT_STRING and _amqp_carries(item)
            for key, item in value.items()
        )
    return True


@dataclasses.dataclass(frozen=True)
class Incoming:
    """What the transport reads from a delivery's properties."""

    headers: dict[str, HeaderValue]
    message_id: str | None
    delivery_count: int | None
    expires_ms: int | None
    broker_deaths: tuple[Mapping[str, Any], ...]

    def expired(self, now: float | None = None) -> bool:
        """Whether the message is too old to deliver (EXPIRE-1, EXPIRE-4).

        RabbitMQ itself moves a message that another client gave a TTL to the
        dead-letter queue when it expires; such a message is dropped too, as
        expired messages are never dead letters. An expiry in a delay queue is
        how a delayed message becomes due, not an expiry of the message.
        """
        if self.broker_deaths:
            newest = self.broker_deaths[0]
            if newest.get("reason") == "expired" and not str(
                newest.get("queue", "")
            ).startswith(DELAY_QUEUE_PREFIX):
                return True
        if self.expires_ms is None:
            return False
        return (time.time() if now is None else now) * 1000 >= self.expires_ms


def decode_properties(properties: Any) -> Incoming:
    """Split a delivery's properties into application headers and transport fields."""
    native: dict[str, Any] = dict(getattr(properties, "headers", None) or {})
    carried = native.get(HEADERS_HEADER)
    if carried is not None:
        headers = _carried_headers(carried)
    else:
        headers = {
            name: _plain_value(value)
            for name, value in native.items()
            if name not in _BROKER_NAMES and not name.startswith(_BROKER_PREFIXES)
        }
    count = native.get(DELIVERY_COUNT_HEADER)
    expires = native.get(EXPIRES_HEADER)
    deaths = native.get("x-death")
    return Incoming(
        headers=headers,
        message_id=getattr(properties, "message_id", None) or None,
        delivery_count=count if isinstance(count, int) else None,
        expires_ms=expires if isinstance(expires, int) else None,
        broker_deaths=tuple(d for d in deaths or () if isinstance(d, Mapping)),
    )


def _carried_headers(carried: Any) -> dict[str, HeaderValue]:
    text = carried.decode("utf-8") if isinstance(carried, bytes) else carried
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        logger.warning(
            "Ignored a malformed %s header: not a JSON object", HEADERS_HEADER
        )
        return {}
    return value


def _plain_value(value: Any) -> HeaderValue:
    """A header value of another client, as one of the types of HEAD-1."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_plain_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain_value(item) for key, item in value.items()}
    if isinstance(value, datetime.datetime):
        return _iso_utc(value)
    return str(value)


def _iso_utc(when: datetime.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).isoformat()


def with_broker_deaths(
    headers: dict[str, HeaderValue],
    broker_deaths: tuple[Mapping[str, Any], ...],
    delivery_limit: int,
) -> dict[str, HeaderValue]:
    """`headers` with RabbitMQ's own dead-lettering (`x-death`) as death entries.

    RabbitMQ dead-letters a message itself when a consumer went away holding its last
    allowed delivery (the queue's `x-delivery-limit`). `x-death` lists the newest
    first; expiries (of delay queues, or set by other clients) are not deaths.
    """
    updated: dict[str, Any] = dict(headers)
    for death in reversed(broker_deaths):
        reason = _BROKER_DEATH_REASONS.get(str(death.get("reason", "")))
        if reason is None:
            continue
        when = death.get("time")
        updated = add_death(
            updated,
            queue=str(death.get("queue", "")),
            reason=reason,
            error=_broker_death_error(str(death.get("reason"))),
            attempts=delivery_limit if reason is DeathReason.DELIVERY_LIMIT else 1,
            when=when if isinstance(when, datetime.datetime) else None,
        )
    return updated


def _broker_death_error(broker_reason: str) -> str:
    if broker_reason == "delivery_limit":
        return (
            "RabbitMQ dead-lettered it at the delivery limit: its last allowed "
            "delivery went back unsettled (the consumer went away)"
        )
    if broker_reason == "maxlen":
        return "RabbitMQ dead-lettered it: the queue was over its length limit"
    return "a consumer rejected it without requeueing (basic.reject or basic.nack)"


def delay_ms(delay: float) -> int:
    """A delay in whole ms, rounded up: a message is never delivered early."""
    # Less a hair: 2.007 s is 2007.0000000000002 ms in floats, which is still 2007.
    return max(1, math.ceil(delay * 1000 - 1e-6))


def delay_bucket_ms(delay: float) -> int:
    """The delay in ms that a message waits for, rounded up to a coarse grid.

    Every distinct delay needs a queue of its own on RabbitMQ, so delays share a few:
    10 ms steps up to 1 s, 100 ms steps up to 1 min, 1 s steps up to 1 h, then
    1 min steps. A message is never delivered before its delay.
    """
    wanted = delay_ms(delay)
    for limit, step in ((1_000, 10), (60_000, 100), (3_600_000, 1_000)):
        if wanted <= limit:
            return math.ceil(wanted / step) * step
    return math.ceil(wanted / 60_000) * 60_000
