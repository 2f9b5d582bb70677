"""`zocalo go`: the request it builds, where it sends it, and its errors."""

from __future__ import annotations

import json
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import TransportPlugin, hookimpl
from zocalo_core._cli.main import main
from zocalo_core._plugins import PluginRegistry, build_plugin_manager
from zocalo_core.testing import Collector, MemoryBroker, MemoryTransport


def run_cli(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture
def loopback(
    monkeypatch: pytest.MonkeyPatch, memory_broker: MemoryBroker
) -> Iterator[Collector]:
    """A broker transport named `loopback` that talks to this test's memory broker."""
    plugin = types.ModuleType("loopback_plugin")
    record = TransportPlugin(
        "loopback", lambda site: MemoryTransport(memory_broker), "test"
    )
    plugin.zocalo_transports = hookimpl(lambda: [record])  # type: ignore[attr-defined]
    registry = PluginRegistry(build_plugin_manager([plugin], load_entry_points=False))
    monkeypatch.setattr("zocalo_core._plugins.get_registry", lambda: registry)
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)
    observer = MemoryTransport(memory_broker)
    observer.connect()
    requests = Collector()
    observer.subscribe("processing_recipe", requests, acknowledgement=False)
    yield requests
    observer.disconnect()


def test_the_request_goes_to_the_dispatcher_queue_and_the_id_is_printed(
    loopback: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = [
        "go",
        "-t",
        "loopback",
        "-r",
        "example",
        "-s",
        "workingdir=/data",
        "1234",
    ]
    exit_code, out, _ = run_cli(arguments, capsys)

    assert exit_code == 0
    recipe_id = out.strip()
    assert str(uuid.UUID(recipe_id)) == recipe_id
    [message] = loopback.wait_for(1, 10)
    assert message.body == {
        "recipes": ["example"],
        "parameters": {"workingdir": "/data", "ispyb_dcid": 1234, "guid": recipe_id},
    }
    assert set(message.headers) == {"zocalo.go.user", "zocalo.go.host"}


def test_a_recipe_file_travels_as_a_custom_recipe(
    loopback: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recipe = {"1": {"queue": "q"}, "start": [[1, {}]]}
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(recipe))

    exit_code, _, _ = run_cli(["go", "-t", "loopback", "-f", str(path), "-n"], capsys)

    assert exit_code == 0
    [message] = loopback.wait_for(1, 10)
    assert message.body["custom_recipe"] == recipe
    assert message.body["recipes"] == []
    assert "ispyb_dcid" not in message.body["parameters"]


def test_an_invalid_recipe_file_lists_its_problems_and_sends_nothing(
    loopback: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"1": {"queue": "q", "output": 7}, "start": [[1, {}]]}))

    exit_code, _, err = run_cli(["go", "-t", "loopback", "-f", str(path), "-n"], capsys)

    assert exit_code == 1
    assert "node 1" in err
    assert "7" in err
    loopback.assert_quiet(0.3, count=0)


def test_dry_run_shows_the_request_and_sends_nothing(
    loopback: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, out, err = run_cli(["go", "-r", "example", "--dry-run", "99"], capsys)

    assert exit_code == 0
    assert '"ispyb_dcid": 99' in err
    assert out.strip() in err
    loopback.assert_quiet(0.3, count=0)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["go", "1234"], "no recipe given"),
        (["go", "-r", "example"], "no ID given"),
        (["go", "-r", "example", "1", "2"], "2 IDs given"),
        (["go", "-r", "example", "abc"], "positive whole number"),
        (["go", "-r", "example", "-s", "novalue", "1"], "KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2(
    arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, _, err = run_cli(arguments, capsys)

    assert exit_code == 2
    assert complaint in err


def test_with_no_broker_configured_it_fails_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)
    monkeypatch.delenv("ZOCALO_DEFAULT_ENV", raising=False)

    exit_code, out, err = run_cli(["go", "-r", "example", "1234"], capsys)

    assert exit_code == 1
    assert out == ""
    assert err.startswith("zocalo: error: no message broker is configured")
    assert err.count("\n") == 1


def test_a_failed_send_is_stored_in_the_fallback_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Unreachable(MemoryTransport):
        def _connect(self) -> None:
            from zocalo_core import DisconnectedError

            raise DisconnectedError("broker at 127.0.0.1:1 refused the connection")

    plugin = types.ModuleType("unreachable_plugin")
    record = TransportPlugin(
        "unreachable", lambda site: Unreachable(MemoryBroker()), "t"
    )
    plugin.zocalo_transports = hookimpl(lambda: [record])  # type: ignore[attr-defined]
    registry = PluginRegistry(build_plugin_manager([plugin], load_entry_points=False))
    monkeypatch.setattr("zocalo_core._plugins.get_registry", lambda: registry)
    site = tmp_path / "site.yml"
    site.write_text(
        "version: 1\n"
        "storage:\n  plugin: storage\n  zocalo.go.fallback_location: spool\n"
        "environments:\n  default: [storage]\n"
    )

    arguments = ["go", "-c", str(site), "-t", "unreachable", "-r", "example", "5"]
    exit_code, _, err = run_cli(arguments, capsys)
    second, _, _ = run_cli(arguments, capsys)

    assert exit_code == 0
    assert second == 0
    stored = sorted((tmp_path / "spool").iterdir())
    assert len(stored) == 2
    content: dict[str, Any] = json.loads(stored[0].read_text())
    assert content["message"]["recipes"] == ["example"]
    recipe_ids = {
        json.loads(path.read_text())["message"]["parameters"]["guid"] for path in stored
    }
    assert {path.name for path in stored} == recipe_ids
    assert "stored the request in" in err


def test_the_dotted_alias_of_the_existing_system_runs_the_same_command() -> None:
    import shutil
    import subprocess
    import sys

    alias = Path(sys.executable).parent / "zocalo.go"
    assert alias.exists() or shutil.which("zocalo.go")
    result = subprocess.run(
        [str(alias), "--help"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0
    assert "Send a processing request to the Dispatcher" in result.stdout


def test_an_unknown_transport_is_an_error_listing_the_installed_ones(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)

    exit_code, _, err = run_cli(["go", "-t", "carrier-pigeon", "-r", "x", "1"], capsys)

    assert exit_code == 1
    assert err.startswith("zocalo: error: no transport named 'carrier-pigeon'")
    assert "known: memory" in err
