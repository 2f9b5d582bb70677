"""What the memory broker tells about itself: outstanding messages, waiting until there
are none, and the contents of a queue (for `zocalo run` and tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from zocalo_core._memory._entries import (
    Consumer,
    Entry,
    MemoryQueue,
    QueuedMessage,
    Session,
)
from zocalo_core.transport import DEAD_LETTER_PREFIX, SubscriptionKind

Match = Callable[[QueuedMessage], bool]


class BrokerInspection:
    """The inspecting half of `MemoryBroker`; the broker provides the state."""

    _changed: threading.Condition
    _queues: dict[str, MemoryQueue]
    _delayed: set[Entry]
    _sessions: list[Session]
    _draining: set[Consumer]
    _generation: int

    def _locked(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def outstanding(
        self, match: Match | None = None, *, include_dead_letters: bool = False
    ) -> int:
        """Messages queued, delayed, unacknowledged or being handled.

        With `match`, only those for which `match(queued_message)` is true; it is called
        without the broker's lock held. Dead-letter queues count only when asked for.
        """
        with self._locked():
            if match is None:
                return self._count(include_dead_letters)
            snapshot = list(self._snapshot(include_dead_letters))
        return sum(1 for entry in snapshot if match(entry))

    def wait_idle(self, timeout: float, match: Match | None = None) -> bool:
        """Wait until `outstanding(match)` is 0; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            with self._locked():
                generation = self._generation
                busy = self._count(False) if match is None else -1
                snapshot = [] if match is None else list(self._snapshot(False))
            if match is not None:
                busy = sum(1 for entry in snapshot if match(entry))
            if busy == 0:
                return True
            with self._locked():
                while self._generation == generation:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)

    def peek(self, queue: str) -> list[QueuedMessage]:
        """The messages waiting in `queue`, in delivery order, not consumed."""
        with self._locked():
            found = self._queues.get(queue)
            entries = found.waiting() if found is not None else []
            return [QueuedMessage.of(entry, "queued") for entry in entries]

    def queue_names(self) -> list[str]:
        """The queues that exist now, sorted."""
        with self._locked():
            return sorted(self._queues)

    def _count(self, include_dead_letters: bool) -> int:
        def counted(name: str) -> bool:
            return include_dead_letters or not name.startswith(DEAD_LETTER_PREFIX)

        total = sum(q.ready for q in self._queues.values() if counted(q.name))
        total += sum(1 for entry in self._delayed if counted(entry.destination))
        for consumer in self._consumers():
            if consumer.subscription.kind is SubscriptionKind.BROADCAST:
                total += consumer.queue.ready
            if counted(consumer.queue.name):
                total += consumer.held_count()
        return total

    def _snapshot(self, include_dead_letters: bool) -> Iterator[QueuedMessage]:
        def counted(name: str) -> bool:
            return include_dead_letters or not name.startswith(DEAD_LETTER_PREFIX)

        queues = [q for q in self._queues.values() if counted(q.name)]
        for consumer in self._consumers():
            if consumer.subscription.kind is SubscriptionKind.BROADCAST:
                queues.append(consumer.queue)
            if counted(consumer.queue.name):
                for entry, state in consumer.held():
                    yield QueuedMessage.of(entry, state)
        for queue in queues:
            for entry in queue.waiting():
                yield QueuedMessage.of(entry, "queued")
        for entry in self._delayed:
            if counted(entry.destination):
                yield QueuedMessage.of(entry, "delayed")

    def _consumers(self) -> Iterator[Consumer]:
        for session in self._sessions:
            yield from session.consumers.values()
        yield from self._draining
