"""The fixtures and settings that every class of the conformance suite shares."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from zocalo_core.testing._helpers import CAPABILITY_MARKER, Collector
from zocalo_core.transport import (
    DEFAULT_DELIVERY_LIMIT,
    Capability,
    Message,
    Transport,
    dead_letter_queue,
)

logger = logging.getLogger(__name__)

TransportFactory = Callable[[], Transport]
NameFactory = Callable[..., str]
#: `bind(exchange, routing_key, queue)`, see `ConformanceBase.bind_exchange`.
ExchangeBinder = Callable[[str, str, str], None]


class ConformanceBase:
    """What a transport's test class declares, and the fixtures the rules use.

    A subclass sets `transport_capabilities` and provides the `transport_factory`
    fixture, which returns a callable making a new, unconnected transport.
    """

    #: The capabilities the transport under test keeps; must be set by the subclass.
    transport_capabilities: ClassVar[frozenset[Capability] | None] = None
    #: How often the transport delivers a message before dead-lettering it.
    delivery_limit: ClassVar[int] = DEFAULT_DELIVERY_LIMIT
    #: How long to wait for a message that should arrive.
    delivery_timeout: ClassVar[float] = 5.0
    #: How long to watch for a message that should not arrive.
    quiet_period: ClassVar[float] = 0.5
    #: How late a delayed message may arrive (DELAY-1).
    delay_margin: ClassVar[float] = 2.0

    @pytest.fixture
    def transport_factory(self) -> TransportFactory:
        pytest.fail(
            f"{type(self).__name__} must provide a `transport_factory` fixture that "
            "returns a callable making a new, unconnected transport"
        )

    @pytest.fixture
    def bind_exchange(self) -> ExchangeBinder:
        """For the EXCH rules: a callable `bind(exchange, routing_key, queue)` that
        makes the broker's exchange `exchange` (a direct one, made when new) route
        `routing_key` to the existing `queue`. What it makes goes after the test."""
        pytest.fail(
            f"{type(self).__name__} lists the exchanges capability, so it must "
            "provide a `bind_exchange` fixture that binds queues to exchanges on its "
            "broker"
        )

    def cleanup_queues(self, names: list[str]) -> None:
        """Remove the queues a test used (and their DLQs) from a shared broker."""

    @pytest.fixture(autouse=True)
    def _capabilities_declared(self, request: pytest.FixtureRequest) -> None:
        declared = self.transport_capabilities
        if declared is None:
            pytest.fail(
                f"{type(self).__name__} must set `transport_capabilities` to the "
                "frozenset of Capability values its transport keeps"
            )
        needed = {
            capability
            for marker in request.node.iter_markers(CAPABILITY_MARKER)
            for capability in marker.args
        }
        missing = sorted(capability.value for capability in needed - declared)
        if missing:
            pytest.skip(
                f"needs {', '.join(missing)}, which the transport does not declare; "
                "the zocalo pytest plugin, when active, deselects such tests instead"
            )

    @pytest.fixture
    def new_name(self) -> Iterator[NameFactory]:
        """A factory of unique queue and topic names; cleaned up after the test."""
        used: list[str] = []

        def make(label: str = "queue") -> str:
            name = f"zocalo.conformance.{label}.{uuid.uuid4().hex[:12]}"
            used.append(name)
            return name

        yield make
        self.cleanup_queues([*used, *(dead_letter_queue(name) for name in used)])

    @pytest.fixture
    def connect(
        self, transport_factory: TransportFactory, new_name: NameFactory
    ) -> Iterator[TransportFactory]:
        """Make and connect a new transport each call; all disconnect after the test."""
        made: list[Transport] = []

        def connect_new() -> Transport:
            transport = transport_factory()
            made.append(transport)
            transport.connect()
            return transport

        yield connect_new
        for transport in made:
            try:
                transport.disconnect()
            except Exception:
                logger.warning("Could not disconnect %r", transport, exc_info=True)

    @pytest.fixture
    def transport(self, connect: TransportFactory) -> Transport:
        """One connected transport."""
        return connect()

    # -- helpers for the rules

    def collect(
        self,
        transport: Transport,
        queue: str,
        *,
        ack: bool = True,
        **options: Any,
    ) -> Collector:
        """Subscribe a `Collector` to `queue`; it acks unless `ack` is false."""
        collector = Collector(transport, ack=ack)
        transport.subscribe(queue, collector, **options)
        return collector

    def receive(self, collector: Collector, count: int = 1) -> list[Message]:
        return collector.wait_for(count, self.delivery_timeout)

    def dead_letters(
        self, transport: Transport, queue: str, count: int = 1
    ) -> list[Message]:
        """Read `count` dead letters of `queue` raw, by subscribing to its DLQ."""
        collector = self.collect(transport, dead_letter_queue(queue), decode=False)
        return self.receive(collector, count)

    def assert_no_dead_letters(self, transport: Transport, queue: str) -> None:
        collector = Collector(transport, ack=True)
        subscription = transport.subscribe(
            dead_letter_queue(queue), collector, decode=False
        )
        collector.assert_quiet(self.quiet_period, 0)
        transport.unsubscribe(subscription)

    def has(self, *capabilities: Capability) -> bool:
        return set(capabilities) <= set(self.transport_capabilities or ())
