"""The pika transport keeps the protocol page, against the RabbitMQ on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from zocalo_core.testing import TransportConformance
from zocalo_core.transport import Capability, Transport
from zocalo_transport_pika import CAPABILITIES

pytestmark = pytest.mark.broker


class TestPikaConformance(TransportConformance):
    transport_capabilities = CAPABILITIES
    # RabbitMQ is on this machine; 0.3 s is ample to see a message that would come.
    quiet_period = 0.3

    @pytest.fixture
    def transport_factory(
        self, transport_maker: Callable[..., Transport]
    ) -> Callable[[], Transport]:
        return transport_maker

    @pytest.fixture(autouse=True)
    def _broker_cleanup(self, broker_cleanup: Callable[[Iterable[str]], None]) -> None:
        self._delete = broker_cleanup

    def cleanup_queues(self, names: list[str]) -> None:
        self._delete(names)

    @pytest.fixture
    def bind_exchange(
        self, exchange_binder: Callable[[str, str, str], None]
    ) -> Callable[[str, str, str], None]:
        return exchange_binder


def test_capabilities_declared() -> None:
    """The capabilities are those the suite runs, and priority is not among them."""
    assert Capability.PRIORITY not in CAPABILITIES
    assert {
        Capability.PREFETCH,
        Capability.DEAD_LETTER,
        Capability.DELIVERY_LIMIT,
        Capability.BROADCAST,
        Capability.TEMPORARY_QUEUES,
        Capability.TRANSACTIONS,
    } <= CAPABILITIES
