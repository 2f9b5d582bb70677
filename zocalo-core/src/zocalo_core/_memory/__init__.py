"""The embedded `memory` transport: an in-process broker with the real semantics.

`MemoryTransport(broker=None)` talks to a `MemoryBroker`; `None` means the process-wide
`default_broker()`, so several services in one process share one broker.
"""

from __future__ import annotations

from typing import Any

from zocalo_core._memory._broker import MemoryBroker
from zocalo_core._memory._entries import QueuedMessage
from zocalo_core._memory._transport import MemoryTransport, default_broker
from zocalo_core._records import TransportPlugin
from zocalo_core.transport import Transport

__all__ = [
    "MEMORY_TRANSPORT",
    "MemoryBroker",
    "MemoryTransport",
    "QueuedMessage",
    "default_broker",
]


def _make_memory_transport(site: Any) -> Transport:
    """The `memory` transport on the default broker; it needs no configuration."""
    return MemoryTransport()


MEMORY_TRANSPORT = TransportPlugin(
    "memory",
    _make_memory_transport,
    "In-process broker with the full semantics, for `zocalo run` and tests",
)
