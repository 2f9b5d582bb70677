"""Fixtures for the Dispatcher tests: a site with a recipe directory, registries with
test filters and checks, and the Dispatcher running on the memory transport."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import (
    DispatcherFilter,
    ReadinessCheck,
    SiteConfiguration,
    hookimpl,
    load,
)
from zocalo_core._plugins import PluginRegistry, build_plugin_manager
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport, ServiceThread
from zocalo_core.transport import Transport
from zocalo_services_contrib._dispatcher import Dispatcher

#: Recipes in the test recipe directory, by name.
RECIPES: dict[str, dict[str, Any]] = {
    "first": {
        "1": {
            "service": "First",
            "queue": "q.first",
            "parameters": {"id": "{guid}", "dcid": "{ispyb_dcid}"},
        },
        "start": [[1, {"from": "first"}]],
    },
    "second": {
        "1": {"service": "Second", "queue": "q.second", "output": 2},
        "2": {"queue": "q.second.next"},
        "start": [[1, {"from": "second"}]],
    },
    "broken": {"1": {"queue": "q.broken", "output": 7}, "start": [[1, {}]]},
}

#: How long a test waits for a message that must come.
WAIT = 10.0


class _Hooks:
    def __init__(
        self, filters: Iterable[DispatcherFilter], checks: Iterable[ReadinessCheck]
    ) -> None:
        self.filters = list(filters)
        self.checks = list(checks)

    @hookimpl
    def zocalo_dispatcher_filters(self) -> list[DispatcherFilter]:
        return self.filters

    @hookimpl
    def zocalo_readiness_checks(self) -> list[ReadinessCheck]:
        return self.checks


def make_registry(
    filters: Iterable[DispatcherFilter] = (), checks: Iterable[ReadinessCheck] = ()
) -> PluginRegistry:
    manager = build_plugin_manager(
        [_Hooks(filters, checks)], load_entry_points=False, builtins=False
    )
    return PluginRegistry(manager)


@pytest.fixture
def registry() -> Callable[..., PluginRegistry]:
    """`registry(filters=[...], checks=[...])`: a registry with only those records."""
    return make_registry


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A folder with a site file's neighbours: `recipes/` holding RECIPES."""
    folder = tmp_path / "site"
    recipes = folder / "recipes"
    recipes.mkdir(parents=True)
    for name, recipe in RECIPES.items():
        (recipes / f"{name}.json").write_text(json.dumps(recipe))
    return folder


@pytest.fixture
def make_site(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., SiteConfiguration]:
    """`make_site(**storage)`: a loaded, activated site file with those storage keys.

    By default the recipe directory is `recipes`, relative to the site file.
    """
    monkeypatch.delenv("ZOCALO_DEFAULT_ENV", raising=False)

    def make(**storage: Any) -> SiteConfiguration:
        settings = {"zocalo.recipe_directory": "recipes", **storage}
        lines = "".join(
            f"  {key}: {json.dumps(value)}\n"
            for key, value in settings.items()
            if value is not None
        )
        text = textwrap.dedent(
            """\
            version: 1
            storage:
              plugin: storage
            {lines}environments:
              default: [storage]
            """
        ).format(lines=lines)
        path = site_dir / "site.yml"
        path.write_text(text)
        site = load(path)
        site.activate()
        return site

    return make


@pytest.fixture
def run_dispatcher(
    memory_broker: MemoryBroker, make_site: Callable[..., SiteConfiguration]
) -> Iterator[Callable[..., ServiceThread]]:
    """Start a Dispatcher: `run_dispatcher(site=..., registry=..., transport=...)`.

    Without `site` it gets `make_site()`; without `registry` an empty one. Other
    keywords become class attributes of the Dispatcher subclass that runs.
    """
    started: list[ServiceThread] = []

    def start(
        *,
        site: Any = "default",
        registry: PluginRegistry | None = None,
        transport: Transport | None = None,
        **attributes: Any,
    ) -> ServiceThread:
        attributes["registry"] = registry or make_registry()
        service_class = type("TestDispatcher", (Dispatcher,), attributes)
        running = ServiceThread(
            service_class,
            transport or MemoryTransport(memory_broker),
            site=make_site() if site == "default" else site,
            host="test.dispatcher",
        ).start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def observer(memory_broker: MemoryBroker) -> Iterator[MemoryTransport]:
    """A transport of the test's own, to send requests and watch queues."""
    transport = MemoryTransport(memory_broker)
    transport.connect()
    yield transport
    transport.disconnect()


@pytest.fixture
def collect(observer: MemoryTransport) -> Callable[[str], Collector]:
    """`collect(queue)`: a Collector of every message sent to `queue` from now on."""

    def subscribe(queue: str) -> Collector:
        collector = Collector()
        observer.subscribe(queue, collector, acknowledgement=False)
        return collector

    return subscribe


@pytest.fixture
def send_request(observer: MemoryTransport) -> Callable[..., None]:
    """`send_request(body, headers=None)`: a request to `processing_recipe`."""

    def send(body: Any, headers: Mapping[str, Any] | None = None) -> None:
        observer.send("processing_recipe", body, headers=dict(headers or {}))

    return send
