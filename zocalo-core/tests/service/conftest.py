"""Helpers for running services on the memory transport in a background thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from zocalo_core import Service
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport, ServiceThread


@pytest.fixture
def run_service(memory_broker: MemoryBroker) -> Iterator[Any]:
    started: list[ServiceThread] = []

    def start(service_class: type[Service], **options: Any) -> ServiceThread:
        transport = MemoryTransport(memory_broker)
        running = ServiceThread(service_class, transport, **options).start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def observer(memory_broker: MemoryBroker) -> Iterator[MemoryTransport]:
    transport = MemoryTransport(memory_broker)
    transport.connect()
    yield transport
    transport.disconnect()


@pytest.fixture
def collect(observer: MemoryTransport) -> Any:
    def subscribe(queue: str, *, broadcast: bool = False) -> Collector:
        collector = Collector()
        if broadcast:
            observer.subscribe_broadcast(queue, collector)
        else:
            observer.subscribe(queue, collector, acknowledgement=False)
        return collector

    return subscribe
