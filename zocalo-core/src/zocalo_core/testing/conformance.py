"""The transport conformance suite: the rules of docs/transport.md as pytest tests.

A transport's tests subclass `TransportConformance`, declare the capabilities the
transport keeps, and provide a `transport_factory` fixture::

    class TestMyTransportConformance(TransportConformance):
        transport_capabilities = frozenset({Capability.PREFETCH})

        @pytest.fixture
        def transport_factory(self):
            return lambda: MyTransport(host="127.0.0.1")

Each rule group is also a class of its own (`QueueRules`, `TransactionRules`, ...) for a
transport that wants to run only some of them while it is being written.
"""

from __future__ import annotations

from zocalo_core.testing._base import ConformanceBase
from zocalo_core.testing._core_rules import (
    BodyRules,
    ConnectionRules,
    HeaderRules,
    QueueRules,
)
from zocalo_core.testing._dead_letter_rules import DeadLetterRules, DeliveryLimitRules
from zocalo_core.testing._delivery_rules import (
    AckRules,
    PrefetchRules,
    RedeliveryRules,
    ThreadRules,
)
from zocalo_core.testing._feature_rules import (
    BroadcastRules,
    DelayRules,
    ExchangeRules,
    ExpirationRules,
    PriorityRules,
    TemporaryQueueRules,
)
from zocalo_core.testing._transaction_rules import TransactionRules

__all__ = [
    "AckRules",
    "BodyRules",
    "BroadcastRules",
    "ConformanceBase",
    "ConnectionRules",
    "DeadLetterRules",
    "DelayRules",
    "DeliveryLimitRules",
    "ExchangeRules",
    "ExpirationRules",
    "HeaderRules",
    "PrefetchRules",
    "PriorityRules",
    "QueueRules",
    "RedeliveryRules",
    "TemporaryQueueRules",
    "ThreadRules",
    "TransactionRules",
    "TransportConformance",
]


class TransportConformance(
    ConnectionRules,
    BodyRules,
    HeaderRules,
    QueueRules,
    AckRules,
    RedeliveryRules,
    ThreadRules,
    PrefetchRules,
    DeadLetterRules,
    DeliveryLimitRules,
    BroadcastRules,
    TemporaryQueueRules,
    DelayRules,
    ExpirationRules,
    PriorityRules,
    ExchangeRules,
    TransactionRules,
):
    """Every rule of the protocol page; subclass it for a transport."""
