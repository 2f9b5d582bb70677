"""The recording transport that stands in for a real one in the recipe tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Sent:
    """One call made on the recording transport."""

    method: str
    destination: str
    body: Any
    headers: dict[str, Any] | None
    delay: float | None
    expiration: float | None
    priority: int | None
    transaction: Any
    exchange: str | None = None


@dataclass
class RecordingTransport:
    """Records every send and broadcast with all of its arguments."""

    calls: list[Sent] = field(default_factory=list)

    def send(
        self,
        queue: str,
        body: Any,
        *,
        headers: dict[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
        exchange: str | None = None,
    ) -> None:
        self.calls.append(
            Sent(
                "send",
                queue,
                body,
                headers,
                delay,
                expiration,
                priority,
                transaction,
                exchange,
            )
        )

    def broadcast(
        self,
        topic: str,
        body: Any,
        *,
        headers: dict[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        transaction: Any = None,
    ) -> None:
        self.calls.append(
            Sent(
                "broadcast", topic, body, headers, delay, expiration, None, transaction
            )
        )

    def destinations(self) -> list[tuple[str, str]]:
        return [(call.method, call.destination) for call in self.calls]


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()
