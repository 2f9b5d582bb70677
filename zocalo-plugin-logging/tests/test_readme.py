"""The README's site-file example works as written, Graylog host aside."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pluggy
import pytest
import yaml
import zocalo_core
from zocalo_core import _plugins, hookspecs
from zocalo_plugin_logging import GraylogUDPHandler, LoggingVerbosity, _plugin
from zocalo_plugin_logging._plugin import LOGGING_PLUGIN

README = Path(__file__).parents[1] / "README.md"


def readme_site_file() -> dict[str, Any]:
    first_yaml = re.search(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    assert first_yaml is not None
    site: dict[str, Any] = yaml.safe_load(first_yaml.group(1))
    return site


def test_readme_logging_block_applies_and_steps_up(udp_listener: Any) -> None:
    block = dict(readme_site_file()["logging"])
    assert block.pop("plugin") == "logging"
    # The example names a real-looking server; this test only talks to 127.0.0.1.
    block["handlers"]["graylog"].update(host="127.0.0.1", port=udp_listener.port)

    verbosity = LOGGING_PLUGIN.activate(block, None)
    graylog = [h for h in logging.getLogger().handlers if h.get_name() == "graylog"]
    logging.getLogger("zocalo_core").error("readme", extra={"service": "Mailer"})
    gelf = udp_listener.receive()
    verbosity.verbosity = 5

    assert isinstance(verbosity, LoggingVerbosity)
    assert [type(handler) for handler in graylog] == [GraylogUDPHandler]
    assert (gelf["level_name"], gelf["_service"]) == ("WARNING", "Mailer")
    assert verbosity.verbosity == 2
    assert logging.getLogger("zocalo_core").level == logging.DEBUG
    assert logging.getLogger().level == logging.DEBUG


def test_readme_site_file_through_the_site_loader(
    udp_listener: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_text = readme_site_file()
    site_text["logging"]["handlers"]["graylog"].update(
        host="127.0.0.1", port=udp_listener.port
    )
    site_file = tmp_path / "site.yml"
    site_file.write_text(yaml.safe_dump(site_text))
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_plugin)
    registry = _plugins.PluginRegistry(manager)
    monkeypatch.setattr(_plugins, "get_registry", lambda: registry)
    monkeypatch.delenv("ZOCALO_DEFAULT_ENV", raising=False)

    site = zocalo_core.load(site_file)
    site.activate()
    site.plugin("logging").verbosity = 1

    assert site.plugin("logging").verbosity == 1
    assert logging.getLogger("zocalo_core").level == logging.DEBUG
