"""Fixtures for the FileWatcher, Runner and JSONLines tests.

Services run on the memory transport in a background thread, with a site
configuration loaded from a real site file whose `runner` block each test writes.
The plugin registry holds zocalo-core's built-ins and the `runner` config plugin
only, with no entry points.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
import zocalo_core
from zocalo_core import (
    ConfigPlugin,
    Message,
    Service,
    SiteConfiguration,
    _plugins,
    hookimpl,
    start_recipe,
)
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport, ServiceThread
from zocalo_core.testing import wait_until as testing_wait_until
from zocalo_services_contrib._settings import RUNNER_CONFIG_PLUGIN

WAIT = 10.0


class _RunnerPluginOnly:
    @hookimpl
    def zocalo_config_plugins(self) -> list[ConfigPlugin]:
        return [RUNNER_CONFIG_PLUGIN]


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the Runner keeps job state by default: kept inside the test's folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginRegistry:
    manager = _plugins.build_plugin_manager(
        [_RunnerPluginOnly()], load_entry_points=False
    )
    registry = _plugins.PluginRegistry(manager)
    monkeypatch.setattr(_plugins, "get_registry", lambda: registry)
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)
    monkeypatch.delenv("ZOCALO_DEFAULT_ENV", raising=False)
    return registry


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., SiteConfiguration]:
    """Write a site file with the given `runner` block (None: without one), load it
    and activate its default environment."""

    def make(block: dict[str, Any] | None, name: str = "site.yml") -> SiteConfiguration:
        document: dict[str, Any] = {"version": 1}
        if block is None:
            document["storage"] = {"plugin": "storage", "x": 1}
            document["environments"] = {"default": ["storage"]}
        else:
            document["runner"] = {"plugin": "runner", **block}
            document["environments"] = {"default": ["runner"]}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document))
        site = zocalo_core.load(path)
        site.activate()
        return site

    return make


class TimingTransport(MemoryTransport):
    """A memory transport that records each message's delivery and settle times.

    `held()` gives, per message id, the seconds from delivery to its handler until
    the ack, nack or reject call: the time a broker would see it unacknowledged.
    """

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.delivered: dict[str, float] = {}
        self.settled: dict[str, tuple[str, float]] = {}
        self.deliveries: list[Message] = []
        self._lock = threading.Lock()

    def subscribe(self, queue: str, handler: Any, **options: Any) -> Any:
        def timed(message: Message) -> None:
            with self._lock:
                self.delivered.setdefault(message.message_id, time.monotonic())
                self.deliveries.append(message)
            handler(message)

        return super().subscribe(queue, timed, **options)

    def _record(self, message: Message, outcome: str) -> None:
        with self._lock:
            self.settled[message.message_id] = (outcome, time.monotonic())

    def ack(self, message: Message, **options: Any) -> None:
        super().ack(message, **options)
        self._record(message, "ack")

    def nack(self, message: Message, **options: Any) -> None:
        super().nack(message, **options)
        self._record(message, "nack")

    def reject(self, message: Message, reason: str, **options: Any) -> None:
        super().reject(message, reason, **options)
        self._record(message, "reject")

    def longest_hold(self) -> float:
        with self._lock:
            return max(
                settled - self.delivered[message_id]
                for message_id, (_, settled) in self.settled.items()
            )


@pytest.fixture
def run_service(memory_broker: MemoryBroker) -> Iterator[Callable[..., ServiceThread]]:
    started: list[ServiceThread] = []

    def start(
        service_class: type[Service],
        site: SiteConfiguration | None,
        transport: MemoryTransport | None = None,
    ) -> ServiceThread:
        transport = transport or TimingTransport(memory_broker)
        running = ServiceThread(service_class, transport, site=site).start()
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
def collect(observer: MemoryTransport) -> Callable[[str], Collector]:
    """A Collector subscribed (without acknowledgement) to a queue."""

    def subscribe(queue: str) -> Collector:
        collector = Collector()
        observer.subscribe(queue, collector, acknowledgement=False)
        return collector

    return subscribe


def payloads(collector: Collector) -> list[Any]:
    """The recipe payloads of the messages a Collector holds."""
    return [body["payload"] for body in collector.bodies]  # type: ignore[index]


def death_of(message: Message) -> dict[str, Any]:
    """The latest death recorded on a dead letter."""
    deaths = message.headers["x-zocalo-deaths"]
    return dict(deaths[-1])  # type: ignore[index]


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """`zocalo_core.testing.wait_until` with this folder's default timeout."""
    return testing_wait_until(condition, timeout, interval=0.01)


class Tools:
    """Small helpers for the tests, handed out by the `tools` fixture (test modules
    cannot import from a conftest)."""

    WAIT = WAIT
    payloads = staticmethod(payloads)
    death_of = staticmethod(death_of)
    wait_until = staticmethod(wait_until)
    TimingTransport = TimingTransport

    def __init__(self, observer: MemoryTransport) -> None:
        self.observer = observer

    def start_step(
        self,
        step: dict[str, Any],
        payload: Any,
        outputs: dict[str, str],
        recipe_id: str = "recipe-1",
    ) -> None:
        """Start a one-step recipe whose named outputs go to the given queues."""
        node: dict[str, Any] = {**step, "output": {}}
        recipe: dict[str, Any] = {"1": node, "start": [[1, payload]]}
        for number, (output, queue) in enumerate(outputs.items(), start=2):
            node["output"][output] = number
            recipe[str(number)] = {"queue": queue}
        start_recipe(self.observer, recipe, environment={"ID": recipe_id})


@pytest.fixture
def tools(observer: MemoryTransport) -> Tools:
    return Tools(observer)
