"""The pika transport keeps the protocol page, against the RabbitMQ on 127.0.0.1.

The suite runs twice: on the quorum queues the transport declares by default, and
with `queue_type: classic`. Classic queues are declared with two priority levels, so
the PRIO rules run there (quorum queues keep no strict priorities). Classic queues keep
every rule but LIMIT-3: RabbitMQ counts no deliveries in them, so a consumer lost
while holding a message's last allowed delivery leaves a message that comes back as a
second delivery instead of being dead-lettered. That case is replaced there by a
test of what the README promises for classic queues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from zocalo_core.testing import Collector, TransportConformance
from zocalo_core.transport import Capability, Transport
from zocalo_transport_pika import CAPABILITIES, CLASSIC_CAPABILITIES

pytestmark = pytest.mark.broker


class TestPikaConformance(TransportConformance):
    transport_capabilities = CAPABILITIES
    # RabbitMQ is on this machine; 0.3 s is ample to see a message that would come.
    quiet_period = 0.3
    queue_type = "quorum"

    @pytest.fixture
    def transport_factory(
        self, transport_maker: Callable[..., Transport]
    ) -> Callable[[], Transport]:
        return lambda: transport_maker(queue_type=self.queue_type)

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


class TestPikaClassicConformance(TestPikaConformance):
    transport_capabilities = CLASSIC_CAPABILITIES
    queue_type = "classic"

    def test_limit_consumer_lost_at_limit(
        self, connect: Callable[[], Transport], new_name: Callable[[], str]
    ) -> None:
        """The classic trade-off: the count restarts, at 2, with the next consumer."""
        queue = new_name()
        self.lose_consumer_at_last_delivery(connect, queue)
        successor = connect()
        again = Collector(successor, ack=True)
        successor.subscribe(queue, again)
        (message,) = again.wait_for(1, 5)
        assert message.redelivered
        assert message.delivery_attempt == 2
        self.assert_no_dead_letters(successor, queue)


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
