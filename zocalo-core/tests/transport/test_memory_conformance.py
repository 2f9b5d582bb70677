"""The memory transport keeps every rule of the protocol page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from zocalo_core.testing import MemoryBroker, MemoryTransport, TransportConformance
from zocalo_core.testing.conformance import DeliveryLimitRules, RedeliveryRules
from zocalo_core.transport import Capability, Transport

# The broker is in this process, so anything that would arrive arrives at once; a
# short watch for messages that must not come keeps the suite fast.
QUIET_PERIOD = 0.15


class TestMemoryConformance(TransportConformance):
    transport_capabilities = frozenset(Capability)
    quiet_period = QUIET_PERIOD

    @pytest.fixture
    def transport_factory(self, memory_broker: MemoryBroker) -> Callable[[], Transport]:
        return lambda: MemoryTransport(memory_broker)

    @pytest.fixture
    def bind_exchange(
        self, memory_broker: MemoryBroker
    ) -> Callable[[str, str, str], None]:
        return memory_broker.bind


class TestMemoryWithAnotherLimit(DeliveryLimitRules, RedeliveryRules):
    """A broker configured with another delivery limit keeps it (LIMIT-1)."""

    transport_capabilities = frozenset(Capability)
    delivery_limit = 2
    quiet_period = QUIET_PERIOD

    @pytest.fixture
    def transport_factory(self) -> Iterator[Callable[[], Transport]]:
        broker = MemoryBroker(delivery_limit=2)
        yield lambda: MemoryTransport(broker)
        broker.close()
