"""`zocalo shutdown`: the command broadcasts it sends."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from zocalo_core import TransportPlugin, hookimpl
from zocalo_core._cli.main import main
from zocalo_core._cli.shutdown_cmd import full_host_id
from zocalo_core._plugins import PluginRegistry, build_plugin_manager
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport


@pytest.fixture
def commands(
    monkeypatch: pytest.MonkeyPatch, memory_broker: MemoryBroker
) -> Iterator[Collector]:
    plugin = types.ModuleType("loopback_plugin")
    record = TransportPlugin(
        "loopback", lambda site: MemoryTransport(memory_broker), "t"
    )
    plugin.zocalo_transports = hookimpl(lambda: [record])  # type: ignore[attr-defined]
    registry = PluginRegistry(build_plugin_manager([plugin], load_entry_points=False))
    monkeypatch.setattr("zocalo_core._plugins.get_registry", lambda: registry)
    observer = MemoryTransport(memory_broker)
    observer.connect()
    received = Collector()
    observer.subscribe_broadcast("command", received)
    yield received
    observer.disconnect()


def test_hosts_and_services_each_get_a_command(
    commands: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["shutdown", "-t", "loopback", "a.b.c.12", "-s", "Dispatcher"])

    assert exited.value.code == 0
    commands.wait_for(2, 10)
    assert commands.bodies == [
        {"command": "shutdown", "host": "a.b.c.12"},
        {"command": "shutdown", "service": "Dispatcher"},
    ]
    assert "asked every instance of Dispatcher to shut down" in capsys.readouterr().out


def test_nothing_named_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["shutdown"])

    assert exited.value.code == 2
    assert "name the instances to stop" in capsys.readouterr().err


def test_a_short_host_gets_the_local_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda: "ws1.diamond.ac.uk")

    assert full_host_id("ws987.6543") == "uk.ac.diamond.ws987.6543"
    assert full_host_id("uk.ac.diamond.ws987.6543") == "uk.ac.diamond.ws987.6543"


def test_a_machine_without_a_domain_adds_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda: "laptop")

    assert full_host_id("ws987.6543") == "ws987.6543"
