"""Helpers of the conformance suite: a recording handler and bounded waits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from zocalo_core.transport import (
    Capability,
    ConnectionState,
    Message,
    Subscription,
    Transaction,
    TransactionState,
    Transport,
)

T = TypeVar("T")

#: The marker that says which capabilities a test needs.
CAPABILITY_MARKER = "zocalo_capabilities"


def needs(*capabilities: Capability) -> Callable[[T], T]:
    """Mark a test, or each test of a class, as needing `capabilities`.

    Such tests are deselected for a transport that does not declare them. A class is
    not marked itself: pytest would pass a class's marks on to every class that
    inherits from it, and `TransportConformance` inherits from all rule groups.
    """
    mark = getattr(pytest.mark, CAPABILITY_MARKER)(*capabilities)

    def apply(target: T) -> T:
        if isinstance(target, type):
            for name, value in list(vars(target).items()):
                if name.startswith("test") and callable(value):
                    setattr(target, name, mark(value))
            return target
        return mark(target)  # type: ignore[no-any-return]

    return apply


class Collector:
    """A handler that records each message it gets, optionally acking it first.

    `react(message)` runs before the message is recorded; an exception from it goes
    to the transport like any handler exception (after the message is recorded).
    Every wait is bounded by its timeout.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        ack: bool = False,
        react: Callable[[Message], None] | None = None,
    ) -> None:
        if ack and transport is None:
            raise ValueError("a Collector that acks needs the transport")
        self.transport = transport
        self.ack = ack
        self.react = react
        self.messages: list[Message] = []
        self.thread_ids: list[int] = []
        self._condition = threading.Condition()

    def __call__(self, message: Message) -> None:
        try:
            if self.react is not None:
                self.react(message)
            if self.ack and self.transport is not None:
                self.transport.ack(message)
        finally:
            with self._condition:
                self.messages.append(message)
                self.thread_ids.append(threading.get_ident())
                self._condition.notify_all()

    @property
    def bodies(self) -> list[object]:
        with self._condition:
            return [message.body for message in self.messages]

    def wait_for(self, count: int, timeout: float) -> list[Message]:
        """The first `count` messages; fails the test if they do not come in time."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(
                        f"expected {count} messages within {timeout} s, got "
                        f"{len(self.messages)}: {self.messages!r}"
                    )
                self._condition.wait(remaining)
            return list(self.messages[:count])

    @staticmethod
    def wait_total(collectors: list[Collector], count: int, timeout: float) -> None:
        """Wait until the collectors hold `count` messages between them."""
        deadline = time.monotonic() + timeout
        while sum(len(c.messages) for c in collectors) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = sum(len(c.messages) for c in collectors)
                pytest.fail(f"expected {count} messages within {timeout} s, got {got}")
            # Each collector has its own condition: wait on one briefly, then recount.
            with collectors[0]._condition:
                collectors[0]._condition.wait(min(remaining, 0.05))

    def assert_quiet(self, duration: float, count: int | None = None) -> None:
        """Fail if more than `count` (default: as many as now) arrive in `duration`."""
        deadline = time.monotonic() + duration
        with self._condition:
            expected = len(self.messages) if count is None else count
            while len(self.messages) <= expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._condition.wait(remaining)
            pytest.fail(
                f"expected no more than {expected} messages, got "
                f"{len(self.messages)}: {self.messages!r}"
            )


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.02
) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_for_log(
    caplog: pytest.LogCaptureFixture,
    level: int,
    *texts: str,
    timeout: float,
) -> logging.LogRecord:
    """The first record at `level` or above whose message contains all `texts`."""
    deadline = time.monotonic() + timeout
    while True:
        for record in caplog.records:
            text = record.getMessage()
            if record.levelno >= level and all(part in text for part in texts):
                return record
        if time.monotonic() >= deadline:
            pytest.fail(f"no log record at level {level} with {texts!r}")
        # Records come from the transport's threads; a short sleep between looks
        # keeps this bounded wait cheap.
        time.sleep(0.02)


# Read through functions so that type checkers do not narrow these changing
# attributes to the first value a test asserted.
def state_of(transport: Transport) -> ConnectionState:
    return transport.state


def is_active(subscription: Subscription) -> bool:
    return subscription.active


def transaction_state(transaction: Transaction) -> TransactionState:
    return transaction.state
