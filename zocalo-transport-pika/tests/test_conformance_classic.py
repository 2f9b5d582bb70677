"""The pika transport with `queue_type: classic` against the conformance suite.

Classic queues are declared with two priority levels, so the PRIO rules run here
(they cannot on RabbitMQ 3.10's quorum queues). They keep every rule but LIMIT-3:
RabbitMQ counts no deliveries in them, so a consumer lost while holding a message's
last allowed delivery leaves a message that comes back as a second delivery instead
of being dead-lettered. That case is replaced here by a test of what the README
promises for classic queues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from zocalo_core.testing import Collector, TransportConformance
from zocalo_core.transport import Message, Transport
from zocalo_transport_pika import CLASSIC_CAPABILITIES

pytestmark = pytest.mark.broker

Connect = Callable[[], Transport]


class TestPikaClassicConformance(TransportConformance):
    transport_capabilities = CLASSIC_CAPABILITIES
    quiet_period = 0.3

    @pytest.fixture
    def transport_factory(
        self, transport_maker: Callable[..., Transport]
    ) -> Callable[[], Transport]:
        return lambda: transport_maker(queue_type="classic")

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

    def test_limit_consumer_lost_at_limit(
        self, connect: Connect, new_name: Callable[[], str]
    ) -> None:
        """The classic trade-off: the count restarts, at 2, with the next consumer."""
        queue = new_name()
        transport = connect()

        def nack_until_last(message: Message) -> None:
            if message.delivery_attempt < self.delivery_limit:
                transport.nack(message)

        collector = Collector(react=nack_until_last)
        transport.subscribe(queue, collector)
        transport.send(queue, "held at the end")
        last = self.receive(collector, self.delivery_limit)[-1]
        assert last.delivery_attempt == self.delivery_limit
        transport.disconnect()
        successor = connect()
        again = Collector(successor, ack=True)
        successor.subscribe(queue, again)
        (message,) = again.wait_for(1, 5)
        assert message.redelivered
        assert message.delivery_attempt == 2
        self.assert_no_dead_letters(successor, queue)
