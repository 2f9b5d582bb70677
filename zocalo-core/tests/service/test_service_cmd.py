"""`zocalo service`: finding the service by name, and refusing to run brokerless."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import (
    PluginError,
    Service,
    ServicePlugin,
    UnknownPluginError,
    hookimpl,
)
from zocalo_core._cli import service_cmd
from zocalo_core._cli.main import main
from zocalo_core._plugins import PluginRegistry, build_plugin_manager
from zocalo_core._service.lookup import match_service_name

NAMES = ["Dispatcher", "DLQ Monitor", "FileWatcher", "JSONLines", "jsonlines-archive"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Dispatcher", "Dispatcher"),
        ("dispatcher", "Dispatcher"),
        ("File", "FileWatcher"),
        ("filew", "FileWatcher"),
        ("JSONLines", "JSONLines"),
        ("jsonlines", "JSONLines"),
        ("jsonlines-", "jsonlines-archive"),
    ],
)
def test_a_service_is_found_exactly_then_in_any_case_then_by_prefix(
    typed: str, expected: str
) -> None:
    assert match_service_name(typed, NAMES) == expected


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(PluginError) as raised:
        match_service_name("D", NAMES)

    assert str(raised.value) == (
        "service name 'D' is ambiguous; it could be: DLQ Monitor, Dispatcher"
    )


def test_an_unknown_name_lists_the_known_services() -> None:
    with pytest.raises(UnknownPluginError, match="known: DLQ Monitor, Dispatcher"):
        match_service_name("Nope", NAMES)


class Echo(Service):
    name = "Echo"


@pytest.fixture
def echo_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("echo_plugin")
    plugin.zocalo_services = hookimpl(  # type: ignore[attr-defined]
        lambda: [ServicePlugin("Echo", Echo, "send messages back")]
    )
    registry = PluginRegistry(build_plugin_manager([plugin], load_entry_points=False))
    monkeypatch.setattr(service_cmd, "get_registry", lambda: registry)


def run_cli(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def test_without_a_broker_the_command_fails_with_one_line(
    echo_registry: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    exit_code, output = run_cli(["service", "-s", "echo"], capsys)

    assert exit_code == 1
    assert output.count("\n") == 1
    assert output.startswith("zocalo: error: no message broker is configured")
    assert "zocalo run" in output
    assert "Traceback" not in output


def test_the_memory_transport_is_refused_for_a_service_process(
    echo_registry: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ZOCALO_CONFIG", raising=False)

    exit_code, output = run_cli(["service", "-s", "Echo", "-t", "memory"], capsys)

    assert exit_code == 1
    assert "the memory transport lives inside one process" in output


def test_an_unknown_service_is_one_line_listing_the_known_ones(
    echo_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, output = run_cli(["service", "-s", "Nope"], capsys)

    assert exit_code == 1
    assert (
        output == "zocalo: error: no service named 'Nope' is installed; known: Echo\n"
    )


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from zocalo_core import __version__

    exit_code, output = run_cli(["service", "--version"], capsys)

    assert exit_code == 0
    assert output == f"zocalo, version {__version__}\n"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zocalo_core._cli.main",
            "--debug",
            "config",
            "show",
            "-c",
            str(tmp_path / "missing.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_without_debug_there_is_no_traceback(tmp_path: Path) -> None:
    result: Any = subprocess.run(
        [
            sys.executable,
            "-m",
            "zocalo_core._cli.main",
            "config",
            "show",
            "-c",
            str(tmp_path / "missing.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("zocalo: error: ")
