"""What the memory broker keeps: messages, queues, consumers and their deliveries.

Everything here is guarded by the broker's one lock; nothing in this module locks.
"""

from __future__ import annotations

import enum
import heapq
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zocalo_core.transport import (
    HeaderValue,
    Outcome,
    OutgoingMessage,
    Subscription,
    decode_body,
)

if TYPE_CHECKING:
    from zocalo_core._memory._transport import MemoryTransport


class EntryState(enum.Enum):
    DELAYED = "delayed"
    READY = "queued"
    IN_FLIGHT = "in flight"
    GONE = "gone"


@dataclass(eq=False)
class Entry:
    """One message in the broker. A broadcast gets one entry per subscriber."""

    seq: int
    message_id: str
    destination: str
    raw: bytes
    headers: dict[str, HeaderValue]
    priority: int
    expires_at: float | None
    broadcast: bool
    deliveries: int = 0
    state: EntryState = EntryState.READY
    queue: MemoryQueue | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class MemoryQueue:
    """Waiting entries by priority then age; consumed entries are skipped lazily."""

    def __init__(self, name: str, *, temporary: bool = False) -> None:
        self.name = name
        self.temporary = temporary
        self.consumers: list[Consumer] = []
        self.ready = 0
        self._heap: list[tuple[int, int, Entry]] = []

    def push(self, entry: Entry) -> None:
        # A returned entry keeps its sequence number, so it goes back to its place.
        entry.state = EntryState.READY
        entry.queue = self
        self.ready += 1
        heapq.heappush(self._heap, (-entry.priority, entry.seq, entry))

    def pop(self) -> Entry | None:
        while self._heap:
            _, _, entry = heapq.heappop(self._heap)
            if entry.state is EntryState.READY and entry.queue is self:
                self.ready -= 1
                return entry
        return None

    def drop(self, entry: Entry) -> None:
        """Remove a waiting entry; its heap slot is skipped when reached."""
        entry.state = EntryState.GONE
        self.ready -= 1

    def waiting(self) -> list[Entry]:
        live = [item for item in self._heap if item[2].state is EntryState.READY]
        return [entry for _, _, entry in sorted(live, key=lambda item: item[:2])]

    def clear(self) -> None:
        for _, _, entry in self._heap:
            if entry.state is EntryState.READY:
                entry.state = EntryState.GONE
        self._heap.clear()
        self.ready = 0


@dataclass(eq=False)
class Delivery:
    """One delivery of an entry to a consumer; `open` until settled or returned."""

    entry: Entry
    consumer: Consumer
    open: bool = True


class Consumer:
    """The broker's side of one subscription, with its own delivery thread."""

    def __init__(
        self,
        subscription: Subscription,
        queue: MemoryQueue,
        session: Session,
        lock: threading.Lock,
    ) -> None:
        self.subscription = subscription
        self.queue = queue
        self.session = session
        self.wakeup = threading.Condition(lock)
        self.unacked: set[Delivery] = set()
        self.handling: Delivery | None = None
        self.stopped = False
        self.thread: threading.Thread | None = None

    def has_room(self) -> bool:
        if not self.subscription.acknowledgement:
            return True
        return len(self.unacked) < self.subscription.prefetch

    def held(self) -> Iterator[tuple[Entry, str]]:
        """The entries this consumer holds: unacknowledged, or in its handler."""
        for delivery in self.unacked:
            yield delivery.entry, "unacknowledged"
        if self.handling is not None and self.handling not in self.unacked:
            yield self.handling.entry, "handling"

    def held_count(self) -> int:
        handling = self.handling is not None and self.handling not in self.unacked
        return len(self.unacked) + int(handling)


class Session:
    """One connected `MemoryTransport` and its consumers, by subscription id."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.consumers: dict[str, Consumer] = {}
        self.open = True


@dataclass
class TransactionOps:
    """What a memory transaction will do at commit, in the order it was asked."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True
    sends: list[tuple[OutgoingMessage, bool]] = field(default_factory=list)
    settlements: list[tuple[Delivery, Outcome, str | None]] = field(
        default_factory=list
    )


def copy_value(value: Any) -> Any:
    """A deep copy of a header value, so a handler cannot change the stored message."""
    if isinstance(value, list):
        return [copy_value(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_value(item) for key, item in value.items()}
    return value


_UNDECODED = object()


@dataclass(frozen=True, eq=False)
class QueuedMessage:
    """A read-only view of a message in the memory broker (for `peek`, `outstanding`).

    `state` is `queued`, `delayed`, `unacknowledged` or `handling`; `delivery_count` is
    how often it was delivered so far.
    """

    destination: str
    headers: Mapping[str, HeaderValue]
    raw: bytes
    priority: int
    message_id: str
    delivery_count: int
    state: str
    _body: list[Any] = field(default_factory=lambda: [_UNDECODED], repr=False)

    @property
    def body(self) -> Any:
        """The decoded JSON body; `MessageError` when the body is not UTF-8 JSON."""
        if self._body[0] is _UNDECODED:
            self._body[0] = decode_body(self.raw)
        return self._body[0]

    @classmethod
    def of(cls, entry: Entry, state: str) -> QueuedMessage:
        return cls(
            destination=entry.destination,
            headers=MappingProxyType(entry.headers),
            raw=entry.raw,
            priority=entry.priority,
            message_id=entry.message_id,
            delivery_count=entry.deliveries,
            state=state,
        )
