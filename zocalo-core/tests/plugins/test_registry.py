"""The plugin manager and registry: registration, duplicates, unknown names."""

from __future__ import annotations

import subprocess
import sys
import types
from importlib import metadata

import pytest
from zocalo_core import (
    PluginError,
    ServicePlugin,
    TransportPlugin,
    UnknownPluginError,
    hookimpl,
)
from zocalo_core._plugins import (
    PluginRegistry,
    build_plugin_manager,
    get_plugin_manager,
)

DISTRIBUTIONS = [
    "zocalo-core",
    "zocalo-transport-pika",
    "zocalo-transport-stomp",
    "zocalo-plugin-logging",
    "zocalo-services-contrib",
]


def plugin_module(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))  # type: ignore[call-overload]
    return module


class EchoService:
    pass


def services(*names: str) -> object:
    def zocalo_services() -> list[ServicePlugin]:
        return [
            ServicePlugin(name, EchoService, f"the {name} service") for name in names
        ]

    return zocalo_services


def registry_with(*plugins: object) -> PluginRegistry:
    return PluginRegistry(build_plugin_manager(plugins, load_entry_points=False))


def test_records_of_every_plugin_are_registered_by_kind_and_name() -> None:
    registry = registry_with(
        plugin_module("site_a", zocalo_services=services("Echo")),
        plugin_module("site_b", zocalo_services=services("Mirror")),
    )

    assert registry.get("service", "Echo").service_class is EchoService
    assert [record.name for record in registry.records("service")] == ["Echo", "Mirror"]


def test_a_name_registered_twice_is_an_error_naming_both_providers() -> None:
    first = plugin_module("site_first", zocalo_services=services("Echo"))
    second = plugin_module("site_second", zocalo_services=services("Echo"))

    with pytest.raises(PluginError) as raised:
        registry_with(first, second)

    message = str(raised.value)
    assert "service 'Echo' is registered twice" in message
    assert "site_first" in message
    assert "site_second" in message


def test_an_alias_that_clashes_with_another_name_is_a_duplicate() -> None:
    def transports_a() -> list[TransportPlugin]:
        return [TransportPlugin("rabbit", lambda site: None, "a", aliases=("amqp",))]  # type: ignore[arg-type,return-value]

    def transports_b() -> list[TransportPlugin]:
        return [TransportPlugin("amqp", lambda site: None, "b")]  # type: ignore[arg-type,return-value]

    with pytest.raises(PluginError, match="transport 'amqp' is registered twice"):
        registry_with(
            plugin_module("t_a", zocalo_transports=transports_a),
            plugin_module("t_b", zocalo_transports=transports_b),
        )


def test_an_alias_finds_the_same_record_but_is_listed_once() -> None:
    def transports() -> list[TransportPlugin]:
        return [TransportPlugin("rabbit", lambda site: None, "a", aliases=("Rabbit",))]  # type: ignore[arg-type,return-value]

    registry = registry_with(plugin_module("t", zocalo_transports=transports))

    assert registry.get("transport", "Rabbit") is registry.get("transport", "rabbit")
    assert "Rabbit" not in registry.primary_names("transport")
    assert "rabbit" in registry.primary_names("transport")


def test_asking_for_an_unknown_name_lists_the_known_ones() -> None:
    registry = registry_with(
        plugin_module("site", zocalo_services=services("Echo", "Beta"))
    )

    with pytest.raises(UnknownPluginError) as raised:
        registry.get("service", "Nope")

    assert (
        str(raised.value) == "no service named 'Nope' is installed; known: Beta, Echo"
    )
    assert raised.value.known == ["Beta", "Echo"]


def test_a_hook_that_raises_is_a_plugin_error_naming_the_plugin() -> None:
    def broken() -> list[ServicePlugin]:
        raise RuntimeError("database unreachable")

    with pytest.raises(
        PluginError, match=r"'site_broken'.*zocalo_services.*unreachable"
    ):
        registry_with(plugin_module("site_broken", zocalo_services=broken))


def test_a_hook_returning_the_wrong_record_type_is_an_error() -> None:
    def wrong() -> list[object]:
        return [ServicePlugin("Echo", EchoService, "not a transport")]

    with pytest.raises(PluginError, match="expected TransportPlugin records"):
        registry_with(plugin_module("site_wrong", zocalo_transports=wrong))


def test_a_hook_returning_none_contributes_nothing() -> None:
    registry = registry_with(plugin_module("site_none", zocalo_services=lambda: None))

    assert registry.records("service") == []


def test_every_distribution_registers_through_the_zocalo_entry_point_group() -> None:
    registered = {
        dist.project_name for _, dist in get_plugin_manager().list_plugin_distinfo()
    }

    for distribution in DISTRIBUTIONS[1:]:
        group = [ep for ep in metadata.distribution(distribution).entry_points]
        assert any(ep.group == "zocalo" for ep in group), distribution
        assert distribution in registered


def test_importing_zocalo_core_loads_no_plugins() -> None:
    probe = (
        "import sys, zocalo_core, zocalo_core.transport, zocalo_core.hookspecs\n"
        "from zocalo_core._plugins import get_plugin_manager\n"
        "assert get_plugin_manager.cache_info().currsize == 0\n"
        "loaded = [m for m in sys.modules if m.startswith('zocalo_transport')]\n"
        "assert not loaded, loaded\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"
