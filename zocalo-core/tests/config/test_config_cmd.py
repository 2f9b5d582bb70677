"""`zocalo config show` and `zocalo config check`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from zocalo_core import _plugins
from zocalo_core._cli.main import cli, main
from zocalo_core._config import MASK

#: The real registry, taken before the autouse fixture swaps in the test one.
INSTALLED_REGISTRY = _plugins.get_registry

Write = Callable[[str, str], Path]

EXAMPLES = Path(__file__).parents[3] / "examples"

GOOD = """
version: 1
storage: {plugin: storage, zocalo.recipe_directory: recipes}
rmq: rmq.yml
environments:
  embedded: [storage]
  live: [storage, rmq]
  default: embedded
"""

RMQ = """
plugin: broker
host: 127.0.0.1
port: 5672
password: s3cr3t-hunter2
"""


@pytest.fixture
def good_site(write: Write) -> Path:
    write("rmq.yml", RMQ)
    return write("site.yml", GOOD)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # main() sets up logging the way the command line wants it; undo that here.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_show_prints_the_activated_configuration_with_secrets_masked(
    good_site: Path,
) -> None:
    result = CliRunner().invoke(
        cli, ["config", "show", "-c", str(good_site), "-e", "live"]
    )

    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["active_environments"] == ["live"]
    assert shown["blocks"]["rmq"]["settings"] == {
        "host": "127.0.0.1",
        "port": 5672,
        "password": MASK,
    }
    assert "s3cr3t-hunter2" not in result.output


def test_show_uses_the_default_environment_and_the_transport_option(
    good_site: Path,
) -> None:
    arguments = ["config", "show", "-c", str(good_site), "-t", "StompTransport"]

    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["active_environments"] == ["default"]
    assert shown["transport"] == "stomp"
    assert list(shown["blocks"]) == ["storage"]


def test_show_reads_zocalo_config_when_no_file_is_given(
    good_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOCALO_CONFIG", str(good_site))

    result = CliRunner().invoke(cli, ["config", "show"])

    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["file"] == str(good_site)


def test_check_a_good_file_prints_ok_per_environment_and_exits_0(
    good_site: Path, config_calls: object
) -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(good_site)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["default: ok", "embedded: ok", "live: ok"]
    assert config_calls.calls == []  # type: ignore[attr-defined]


def test_check_names_blocks_skipped_for_a_missing_plugin(write: Write) -> None:
    write("gl.yml", "plugin: graylog\nhost: h\n")
    site = write("site.yml", "version: 1\ngl: gl.yml\nenvironments: {logs: [gl]}\n")

    result = CliRunner().invoke(cli, ["config", "check", str(site)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "logs: ok (skipped, config plugin not installed: 'gl')"
    ]


def test_check_a_file_that_cannot_load_prints_every_problem_and_exits_1(
    write: Write,
) -> None:
    site = write(
        "site.yml",
        """
        version: 1
        rmq: {plugin: broker, port: x}
        environments:
          live: [rmq, nothing]
        """,
    )

    result = CliRunner().invoke(cli, ["config", "check", str(site)])

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{site}, line 2: block 'rmq' (plugin 'broker'): required key 'host' (broker "
        "host name) is missing; add it",
        f"{site}, line 2: block 'rmq' (plugin 'broker'): key 'port' must be of type "
        "int, not str",
        f"{site}, line 4: environment 'live': lists block 'nothing', which is not "
        "defined; defined blocks: rmq",
    ]
    assert str(result.exception) == (
        f"{site}: 3 problems found; fix them and check again"
    )


def test_check_reports_broken_block_files_per_environment(
    good_site: Path, write: Write
) -> None:
    write("rmq.yml", RMQ.replace("5672", "'5672'"))

    result = CliRunner().invoke(cli, ["config", "check", str(good_site)])

    assert result.exit_code == 1
    rmq = good_site.parent / "rmq.yml"
    assert result.stdout.splitlines() == [
        "default: ok",
        "embedded: ok",
        f"live: {rmq}, line 3: block 'rmq' (declared in {good_site}, line 3) (plugin "
        "'broker'): key 'port' must be of type int, not str",
    ]
    assert "environments with problems: live" in str(result.exception)


def test_check_only_the_environments_given_with_e(
    good_site: Path, write: Write
) -> None:
    write("rmq.yml", "not: [valid")

    arguments = ["config", "check", str(good_site), "-e", "embedded"]
    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["embedded: ok"]


def test_check_without_a_file_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["config", "check"])

    assert result.exit_code == 2
    assert "give the site file to check, or set ZOCALO_CONFIG" in result.stderr


def test_main_turns_a_bad_file_into_one_line_and_exit_1(
    write: Write, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    site = write("site.yml", "version: 2\n")

    with pytest.raises(SystemExit) as caught:
        main(["config", "check", str(site)])

    assert caught.value.code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.splitlines() == [
        f"zocalo: error: {site}: 1 problem found; fix it and check again"
    ]
    assert captured.out.splitlines() == [
        f"{site}, line 1: `version: 2` is not supported; this Zocalo reads version 1 "
        "site files only"
    ]


def test_main_show_with_an_unknown_environment_is_one_line_and_exit_1(
    good_site: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["config", "show", "-c", str(good_site), "-e", "staging"])

    assert caught.value.code == 1
    assert capsys.readouterr().err == (
        f"zocalo: error: environment 'staging' is not defined; {good_site} defines: "
        "default, embedded, live\n"
    )


def test_the_example_site_file_checks_and_shows_with_the_installed_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_plugins, "get_registry", INSTALLED_REGISTRY)
    site = EXAMPLES / "site.yml"

    check = CliRunner().invoke(cli, ["config", "check", str(site)])
    show = CliRunner().invoke(cli, ["config", "show", "-c", str(site), "-e", "live"])

    assert check.exit_code == 0, check.output
    assert check.stdout.splitlines() == [
        "default: ok",
        "embedded: ok",
        "live: ok",
    ]
    assert show.exit_code == 0, show.output
    shown = yaml.safe_load(show.stdout)
    assert shown["transport"] == "pika"
    assert shown["blocks"]["rabbitmq"]["status"] == "activated"
    assert shown["blocks"]["runner"]["status"] == "activated"
    assert shown["blocks"]["rabbitmq"]["settings"]["password"] == MASK
    assert shown["blocks"]["rabbitmq"]["settings"]["host"] == "127.0.0.1"
