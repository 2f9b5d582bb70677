"""The values of the transport interface: enums, messages, subscriptions, transactions,
and the checks and encodings every transport shares. Public through
`zocalo_core.transport`, which documents them; the rules cited are those of
docs/transport.md.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from zocalo_core._errors import MessageError, TransportError

if TYPE_CHECKING:
    from zocalo_core.transport import Transport

#: The header with the history of a dead letter's deaths (docs/transport.md).
DEATHS_HEADER = "x-zocalo-deaths"
#: Dead letters of queue `q` go to the queue `DEAD_LETTER_PREFIX + q`.
DEAD_LETTER_PREFIX = "dlq."
DEFAULT_DELIVERY_LIMIT = 5
DEFAULT_PRIORITY = 4
MAX_NAME_BYTES = 255

_HEADER_DEPTH_LIMIT = 32
_INT64 = 2**63

HeaderValue: TypeAlias = (
    str | int | float | bool | list["HeaderValue"] | dict[str, "HeaderValue"] | None
)
Handler = Callable[["Message"], None]


class Capability(str, enum.Enum):
    """An optional group of rules of the protocol that a transport keeps."""

    PREFETCH = "prefetch"
    DEAD_LETTER = "dead-letter"
    DELIVERY_LIMIT = "delivery-limit"
    BROADCAST = "broadcast"
    TEMPORARY_QUEUES = "temporary-queues"
    DELAY = "delay"
    EXPIRATION = "expiration"
    PRIORITY = "priority"
    TRANSACTIONS = "transactions"
    EXCHANGES = "exchanges"


class ConnectionState(str, enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class SubscriptionKind(str, enum.Enum):
    QUEUE = "queue"
    BROADCAST = "broadcast"
    TEMPORARY = "temporary"


class Outcome(str, enum.Enum):
    """How a message is settled, as handed to `Transport._settle`."""

    ACK = "ack"
    NACK = "nack"
    REJECT = "reject"


class TransactionState(str, enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


class DeathReason(str, enum.Enum):
    """Why a message was dead-lettered: the `reason` of a death entry."""

    REJECTED = "rejected"
    DELIVERY_LIMIT = "delivery-limit"
    UNDECODABLE = "undecodable"
    #: Sent in a transaction that committed, then found to reach no queue.
    UNROUTABLE = "unroutable"


class _Settled(enum.Enum):
    SETTLING = "settling"
    SETTLED = "settled"


def encode_body(body: Any) -> bytes:
    """The bytes to send for `body`: bytes as they are, anything else as UTF-8 JSON."""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    try:
        text = json.dumps(
            body, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        problem = (
            f"the message body cannot be sent as JSON ({exc}); send a JSON value "
            "(dict, list, str, finite number, bool, None) or bytes"
        )
        raise MessageError(problem) from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_body(raw: bytes) -> Any:
    """The JSON value in `raw`; `MessageError` when it is not UTF-8 JSON."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise MessageError(f"the message body is not UTF-8 JSON: {exc}") from exc


def check_name(name: object, what: str) -> str:
    """`name` if it is a valid queue or topic name (QUEUE-5), else `TransportError`."""
    if not isinstance(name, str) or not name:
        article = "an" if what[:1] in "aeiou" else "a"
        problem = f"{article} {what} name must be a non-empty string, not {name!r}"
    elif len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = f"the {what} name {name[:40]!r}... is over {MAX_NAME_BYTES} bytes"
    # The one whitespace character `isprintable` lets through is the space.
    elif not name.isprintable() or " " in name:
        problem = f"the {what} name {name!r} contains whitespace or control characters"
    else:
        return name
    raise TransportError(problem)


def _copy_header_value(value: object, path: str, depth: int) -> HeaderValue:
    if depth > _HEADER_DEPTH_LIMIT:
        raise MessageError(
            f"header {path} is nested more than {_HEADER_DEPTH_LIMIT} deep"
        )
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise MessageError(f"header {path} is an int outside 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MessageError(f"header {path} is {value}, not a finite number")
        return value
    if isinstance(value, list):
        return [
            _copy_header_value(item, f"{path}[{index}]", depth + 1)
            for index, item in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            _header_key(key, path): _copy_header_value(item, f"{path}.{key}", depth + 1)
            for key, item in value.items()
        }
    problem = (
        f"header {path} is a {type(value).__name__}; header values are str, int, "
        "float, bool, None, or lists and dicts of those"
    )
    raise MessageError(problem)


def _header_key(key: object, path: str) -> str:
    if not isinstance(key, str):
        raise MessageError(f"header {path} has the key {key!r}; keys must be strings")
    return key


def check_headers(headers: Mapping[str, Any] | None) -> dict[str, HeaderValue]:
    """A deep copy of `headers` if they fit HEAD-1, else `MessageError`."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise MessageError(f"headers must be a mapping, not {type(headers).__name__}")
    return {
        _header_key(key, "names"): _copy_header_value(value, repr(key), 0)
        for key, value in headers.items()
    }


def dead_letter_queue(queue: str) -> str:
    """The name of the queue that holds the dead letters of `queue`."""
    return DEAD_LETTER_PREFIX + queue


def add_death(
    headers: Mapping[str, Any],
    *,
    queue: str,
    reason: DeathReason,
    error: str,
    attempts: int,
    when: datetime.datetime | None = None,
    exchange: str = "",
) -> dict[str, Any]:
    """A copy of `headers` with one more entry in `x-zocalo-deaths`, the newest last.

    `exchange` is the exchange a message was sent through (EXCH-1), if any.
    """
    when = when or datetime.datetime.now(datetime.timezone.utc)
    entry = {
        "queue": queue,
        "reason": reason.value,
        "error": error,
        "attempts": attempts,
        "time": when.astimezone(datetime.timezone.utc).isoformat(),
    }
    if exchange:
        entry["exchange"] = exchange
    updated = dict(headers)
    history = updated.get(DEATHS_HEADER)
    updated[DEATHS_HEADER] = [*history, entry] if isinstance(history, list) else [entry]
    return updated


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to publish, checked and encoded, as `_send` and `_broadcast` get it.

    `delay` is 0 for no delay; `priority` is `DEFAULT_PRIORITY` when none was given.
    `exchange` is "" for a send straight to the queue `destination`; otherwise the
    send goes through that exchange with `destination` as its routing key (EXCH-1).
    """

    destination: str
    raw: bytes
    headers: dict[str, HeaderValue]
    delay: float = 0.0
    expiration: float | None = None
    priority: int = DEFAULT_PRIORITY
    exchange: str = ""


class Subscription:
    """One subscription of one transport: what `subscribe*` return.

    `destination` is the queue or topic, for a temporary subscription the name the
    transport chose. `transport_data` is for the transport's own use.
    """

    __slots__ = (
        "_active",
        "acknowledgement",
        "decode",
        "destination",
        "handler",
        "id",
        "kind",
        "prefetch",
        "transport",
        "transport_data",
    )

    def __init__(
        self,
        *,
        subscription_id: str,
        kind: SubscriptionKind,
        destination: str,
        handler: Handler,
        acknowledgement: bool,
        prefetch: int,
        decode: bool,
        transport: Transport,
    ) -> None:
        self.id = subscription_id
        self.kind = kind
        self.destination = destination
        self.handler = handler
        self.acknowledgement = acknowledgement
        self.prefetch = prefetch
        self.decode = decode
        self.transport = transport
        self.transport_data: Any = None
        self._active = True

    @property
    def active(self) -> bool:
        """`True` until the subscription is unsubscribed or its connection ends."""
        return self._active

    def __repr__(self) -> str:
        state = "active" if self._active else "ended"
        return (
            f"<Subscription {self.id} {self.kind.value} {self.destination!r} {state}>"
        )


class Message:
    """A message as a handler receives it. `transport_data` is the transport's own."""

    __slots__ = (
        "_settlement",
        "body",
        "delivery_attempt",
        "destination",
        "headers",
        "message_id",
        "raw",
        "redelivered",
        "subscription",
        "transport_data",
    )

    def __init__(
        self,
        *,
        body: Any,
        raw: bytes,
        headers: Mapping[str, HeaderValue],
        subscription: Subscription,
        delivery_attempt: int,
        redelivered: bool,
        message_id: str,
        destination: str,
        transport_data: Any = None,
    ) -> None:
        self.body = body
        self.raw = raw
        self.headers: Mapping[str, HeaderValue] = MappingProxyType(dict(headers))
        self.subscription = subscription
        self.delivery_attempt = delivery_attempt
        self.redelivered = redelivered
        self.message_id = message_id
        self.destination = destination
        self.transport_data = transport_data
        self._settlement: _Settled | Transaction | None = None

    def __repr__(self) -> str:
        return (
            f"<Message {self.message_id} on {self.destination!r} "
            f"attempt {self.delivery_attempt}>"
        )


class Transaction:
    """An open or finished transaction; `transport_data` is the transport's own."""

    __slots__ = (
        "_messages",
        "_state",
        "id",
        "subscription",
        "transport",
        "transport_data",
    )

    def __init__(
        self,
        transaction_id: str,
        subscription: Subscription | None,
        transport: Transport,
    ) -> None:
        self.id = transaction_id
        self.subscription = subscription
        self.transport = transport
        self.transport_data: Any = None
        self._state = TransactionState.OPEN
        self._messages: list[Message] = []

    @property
    def state(self) -> TransactionState:
        return self._state

    def __repr__(self) -> str:
        return f"<Transaction {self.id} {self._state.value}>"


def _seconds(value: object, what: str, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        lowest = "at least 0" if allow_zero else "above 0"
        raise MessageError(
            f"{what} must be a finite number of seconds {lowest}, not {value!r}"
        )
    return float(value)


def settle_problem(transport: Transport, message: Message, outcome: Outcome) -> str:
    """Why `message` cannot be settled on `transport` now (ACK-3 to ACK-5), or ""."""
    subscription = getattr(message, "subscription", None)
    if (
        not isinstance(subscription, Subscription)
        or subscription.transport is not transport
    ):
        problem = "it came from another transport"
    elif not subscription.acknowledgement:
        problem = (
            f"its subscription to {subscription.destination!r} has no acknowledgement"
        )
    elif not subscription.active:
        problem = "its subscription has ended, so it went back to its queue"
    elif isinstance(message._settlement, Transaction):
        problem = f"it is already settled in the open {message._settlement!r}"
    elif message._settlement is not None:
        problem = "it is already settled"
    else:
        # The usual case, once per message: no text is built for it.
        return ""
    return f"cannot {outcome.value} {message!r}: {problem}"


def transaction_problem(
    transport: Transport,
    transaction: Transaction,
    registered: Transaction | None,
    message: Message | None,
) -> str:
    """Why `transaction` cannot be used (for `message`) now (TXN-5, TXN-6), or ""."""
    if registered is not transaction:
        return (
            f"{transaction!r} has finished or belongs to another transport than this "
            f"{transport.name} transport; begin a new transaction"
        )
    if message is None or transaction.subscription is message.subscription:
        return ""
    if transaction.subscription is None:
        return (
            f"{transaction!r} was begun without a subscription, so it can only send; "
            "begin it with transaction_begin(message.subscription) to settle messages"
        )
    return (
        f"{message!r} belongs to another subscription than the one {transaction!r} "
        "is bound to"
    )


def check_priority(priority: object) -> int | None:
    """`priority` if `None` or an int from 0 to 9, else `MessageError` (PRIO-2)."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise MessageError(f"priority must be an int from 0 to 9, not {priority!r}")
    if not 0 <= priority <= 9:
        raise MessageError(f"priority must be from 0 to 9, not {priority}")
    return priority


def build_outgoing(
    destination: str,
    body: Any,
    headers: Mapping[str, Any] | None,
    delay: float | None,
    expiration: float | None,
    priority: int | None,
    exchange: str = "",
) -> OutgoingMessage:
    """Check and encode a message to send (BODY-4, HEAD-3, DELAY-3, EXPIRE-5)."""
    checked_priority = check_priority(priority)
    checked_delay = _seconds(delay, "delay", allow_zero=True) or 0.0
    if exchange and checked_delay:
        # The broker would route it only when it is due, when nobody is left to
        # hear that it went nowhere (EXCH-3).
        raise MessageError(
            f"a message through the exchange {exchange!r} cannot have a delay: "
            "send it without one, or to a queue"
        )
    return OutgoingMessage(
        destination=destination,
        raw=encode_body(body),
        headers=check_headers(headers),
        delay=checked_delay,
        expiration=_seconds(expiration, "expiration", allow_zero=False),
        priority=DEFAULT_PRIORITY if checked_priority is None else checked_priority,
        exchange=exchange,
    )


def temporary_queue_name(hint: str | None) -> str:
    """`transient.<hint>.<uuid>`, not doubling a `transient.` the hint starts with."""
    if not hint:
        return f"transient.{uuid.uuid4().hex}"
    prefix = hint if hint.startswith("transient.") else f"transient.{hint}"
    return f"{prefix}.{uuid.uuid4().hex}"
