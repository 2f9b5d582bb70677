"""Fixtures for the site-configuration tests.

Every test here sees a registry of config plugins built from zocalo-core's own
`storage` and `transport` plus the test plugins below, and nothing else: no entry
points, and no dependence on the other built-in plugins.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import pytest
from zocalo_core import ConfigurationError, _plugins, hookspecs
from zocalo_core._config.core_plugins import CORE_CONFIG_PLUGINS
from zocalo_core._records import ConfigKey, ConfigPlugin


@dataclass
class Calls:
    """Every call of a test plugin's activate: (plugin, settings as given)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def plugins(self) -> list[str]:
        return [plugin for plugin, _ in self.calls]


def _recording(name: str, calls: Calls) -> Callable[[Mapping[str, Any], Any], Any]:
    def activate(block: Mapping[str, Any], site: Any) -> Any:
        calls.calls.append((name, dict(block)))
        return {"from": name, **block}

    return activate


def _meddling(block: Mapping[str, Any], site: Any) -> None:
    # A badly behaved plugin: it changes what it was given.
    assert isinstance(block, dict)
    block["host"] = "changed"
    block.clear()


def _failing(block: Mapping[str, Any], site: Any) -> None:
    raise RuntimeError("the plugin fell over")


def _check_size(block: Mapping[str, Any]) -> None:
    # A plugin's own check of values beyond their types; it must not change them.
    if block.get("size", 0) < 0:
        raise ConfigurationError("`size` must be at least 0")
    if isinstance(block, dict):
        block.clear()


def _test_config_plugins(calls: Calls) -> list[ConfigPlugin]:
    broker_keys = (
        ConfigKey("host", (str,), required=True, summary="broker host name"),
        ConfigKey("port", (int,), required=True),
        ConfigKey("username", (str,)),
        ConfigKey("password", (str,), secret=True),
        ConfigKey("vhost", (str,)),
    )
    return [
        ConfigPlugin("broker", _recording("broker", calls), "a broker", broker_keys),
        ConfigPlugin("recorder", _recording("recorder", calls), "any", open_keys=True),
        ConfigPlugin("meddler", _meddling, "changes its settings", open_keys=True),
        ConfigPlugin("failing", _failing, "always fails", open_keys=True),
        ConfigPlugin(
            "checked",
            _recording("checked", calls),
            "checks its values",
            (ConfigKey("size", (int,)),),
            check=_check_size,
        ),
    ]


class _TestPlugins:
    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    @hookspecs.hookimpl
    def zocalo_config_plugins(self) -> list[ConfigPlugin]:
        return [*CORE_CONFIG_PLUGINS, *_test_config_plugins(self._calls)]


@pytest.fixture(autouse=True)
def config_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Install the test registry; the fixture's value records activate calls."""
    calls = Calls()
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_TestPlugins(calls), name="zocalo-config-tests")
    registry = _plugins.PluginRegistry(manager)
    monkeypatch.setattr(_plugins, "get_registry", lambda: registry)
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)
    monkeypatch.delenv("ZOCALO_DEFAULT_ENV", raising=False)
    return calls


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented text to a file under tmp_path (folders made) and return it."""

    def write_file(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write_file
