"""Helpers for running services on the memory transport in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from zocalo_core import RunnerOptions, Service, ServiceRunner
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport


class RunningService:
    """A service runner in a thread, stopped and joined (with a bound) at the end."""

    def __init__(
        self, broker: MemoryBroker, service_class: type[Service], **options: Any
    ) -> None:
        options.setdefault("handle_signals", False)
        options.setdefault("host", "test.host.1")
        self.runner = ServiceRunner(
            service_class, MemoryTransport(broker), options=RunnerOptions(**options)
        )
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.exit_code = self.runner.run()

    def start(self) -> RunningService:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        self.runner.request_stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the service did not stop in time"
        return self.exit_code


@pytest.fixture
def run_service(memory_broker: MemoryBroker) -> Iterator[Any]:
    started: list[RunningService] = []

    def start(service_class: type[Service], **options: Any) -> RunningService:
        running = RunningService(memory_broker, service_class, **options).start()
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
