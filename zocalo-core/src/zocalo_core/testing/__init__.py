"""Test support for Zocalo transports and the code that uses them.

- `TransportConformance`: the contract of docs/transport.md as pytest tests, which
  every transport's tests subclass (see `zocalo_core.testing.conformance`);
- `Collector`, `needs`: a recording handler with bounded waits, and the marker of the
  capabilities a test needs;
- `MemoryBroker`, `MemoryTransport`: the embedded broker, for tests of services;
- `ServiceThread`: a service run by its runner in a background thread, for tests;
- the pytest plugin `zocalo_core.testing.plugin`, loaded by pytest itself once
  zocalo-core is installed with its `testing` extra, with the fixtures
  `memory_broker`, `memory_transport` and `unique_name`.
"""

from __future__ import annotations

import pytest

# The suite's assertions report their values only if pytest rewrites its modules,
# which must be asked for before they are imported. This package itself is being
# imported already, so only its submodules are named.
pytest.register_assert_rewrite(
    *(
        f"zocalo_core.testing.{module}"
        for module in (
            "_base",
            "_core_rules",
            "_dead_letter_rules",
            "_delivery_rules",
            "_feature_rules",
            "_helpers",
            "_transaction_rules",
            "conformance",
        )
    )
)

from zocalo_core._memory import MemoryBroker, MemoryTransport, QueuedMessage  # noqa: E402
from zocalo_core.testing._helpers import Collector, needs, wait_until  # noqa: E402
from zocalo_core.testing._services import ServiceThread  # noqa: E402
from zocalo_core.testing.conformance import TransportConformance  # noqa: E402

__all__ = [
    "Collector",
    "MemoryBroker",
    "MemoryTransport",
    "QueuedMessage",
    "ServiceThread",
    "TransportConformance",
    "needs",
    "wait_until",
]
