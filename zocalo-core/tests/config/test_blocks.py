"""Plugin blocks: block files, checks against config plugins, unknown plugins, masks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import ConfigKey, ConfigPlugin, ConfigurationError, load
from zocalo_core._config import MASK
from zocalo_core._config._blocks import (
    ResolvedBlock,
    looks_secret,
    mask_settings,
    validate_block,
)
from zocalo_core._config._problems import Location, Problems
from zocalo_core._config._yaml import parse_yaml

Write = Callable[[str, str], Path]

BROKER = """
plugin: broker
host: 127.0.0.1
port: 5672
password: s3cr3t
"""

WITH_FILE_BLOCK = """
version: 1
storage: {plugin: storage}
rmq: credentials/rmq.yml
environments:
  embedded: [storage]
  live: [storage, rmq]
"""


def _unreadable_missing(path: Path) -> None:
    pass


def _unreadable_directory(path: Path) -> None:
    path.mkdir(parents=True)


def _unreadable_yaml(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("plugin: broker\nhost: [unclosed\n")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_unreadable_missing, "its block file {file} does not exist"),
        (_unreadable_directory, "its block file {file} is a directory, not a file"),
    ],
)
def test_an_unreadable_block_file_is_an_error_only_when_its_environment_is_activated(
    write: Write,
    make: Callable[[Path], None],
    reason: str,
    config_calls: object,
) -> None:
    site = write("site.yml", WITH_FILE_BLOCK)
    block_file = site.parent / "credentials" / "rmq.yml"
    make(block_file)

    configuration = load(site)
    configuration.activate(["embedded"])
    with pytest.raises(ConfigurationError) as caught:
        configuration.activate(["live"])

    assert str(caught.value) == (
        f"{site}, line 3: block 'rmq': " + reason.format(file=block_file)
    )
    assert configuration.active_environments == ("embedded",)


def test_a_block_file_with_invalid_yaml_is_an_error_only_at_activation(
    write: Write,
) -> None:
    site = write("site.yml", WITH_FILE_BLOCK)
    block_file = site.parent / "credentials" / "rmq.yml"
    _unreadable_yaml(block_file)

    configuration = load(site)
    with pytest.raises(ConfigurationError) as caught:
        configuration.activate(["live"])

    assert str(caught.value) == (
        f"{block_file}, line 3, column 1: block 'rmq' (declared in {site}, line 3): "
        "not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing "
        "a flow sequence, line 2)"
    )


def test_a_failing_block_file_stops_activation_before_any_plugin_runs(
    write: Write, config_calls: object
) -> None:
    site = write(
        "site.yml",
        """
        version: 1
        first: {plugin: recorder}
        rmq: missing.yml
        environments:
          live: [first, rmq]
        """,
    )
    configuration = load(site)

    with pytest.raises(ConfigurationError, match=r"missing\.yml does not exist"):
        configuration.activate(["live"])

    assert config_calls.calls == []  # type: ignore[attr-defined]
    assert configuration.plugin("recorder") is None


def test_a_block_path_starting_with_a_tilde_is_in_the_home_directory(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("home/rmq.yml", BROKER)
    site = write(
        "etc/site.yml", "version: 1\nrmq: ~/rmq.yml\nenvironments: {l: [rmq]}\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    configuration = load(site)
    configuration.activate(["l"])

    assert configuration.block_settings("broker") == {
        "host": "127.0.0.1",
        "port": 5672,
        "password": "s3cr3t",
    }


def test_a_relative_block_path_is_relative_to_the_file_that_declared_it(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("conf/brokers/rmq.yml", BROKER)
    write("conf/brokers/blocks.yml", "version: 1\nrmq: rmq.yml\n")
    write("rmq.yml", BROKER.replace("127.0.0.1", "wrong.example"))
    site = write(
        "conf/site.yml",
        "version: 1\ninclude: [brokers/blocks.yml]\nenvironments: {l: [rmq]}\n",
    )
    monkeypatch.chdir(tmp_path)

    configuration = load(site)
    configuration.activate(["l"])

    assert configuration.plugin("broker")["host"] == "127.0.0.1"


def test_a_block_file_is_checked_like_an_inline_block(write: Write) -> None:
    block_file = write("rmq.yml", BROKER.replace("port: 5672", "port: '5672'"))
    site = write("site.yml", "version: 1\nrmq: rmq.yml\nenvironments: {l: [rmq]}\n")
    configuration = load(site)

    with pytest.raises(ConfigurationError) as caught:
        configuration.activate(["l"])

    assert str(caught.value) == (
        f"{block_file}, line 3: block 'rmq' (declared in {site}, line 2) (plugin "
        "'broker'): key 'port' must be of type int, not str"
    )


def test_a_block_file_without_a_plugin_key_is_an_error(write: Write) -> None:
    block_file = write("rmq.yml", "host: 127.0.0.1\n")
    site = write("site.yml", "version: 1\nrmq: rmq.yml\nenvironments: {l: [rmq]}\n")

    with pytest.raises(ConfigurationError) as caught:
        load(site).activate(["l"])

    assert str(caught.value) == (
        f"{block_file}: block 'rmq' (declared in {site}, line 2): has no `plugin` "
        "key; add `plugin: <name>` naming the configuration plugin that reads this "
        "block"
    )


def test_a_missing_required_key_names_the_file_the_block_and_the_key(
    write: Write,
) -> None:
    site = write("site.yml", "version: 1\nrmq:\n  plugin: broker\n  port: 5672\n")

    with pytest.raises(ConfigurationError) as caught:
        load(site)

    assert str(caught.value) == (
        f"{site}, line 2: block 'rmq' (plugin 'broker'): required key 'host' (broker "
        "host name) is missing; add it"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("'5672'", "key 'port' must be of type int, not str"),
        ("true", "key 'port' must be of type int, not bool"),
        ("", "key 'port' has no value; give it a value of type int"),
    ],
)
def test_a_wrong_type_names_the_file_the_line_the_block_and_the_key(
    write: Write, value: str, problem: str
) -> None:
    site = write(
        "site.yml",
        f"version: 1\n\nrmq:\n  plugin: broker\n  host: h\n  port: {value}\n",
    )

    with pytest.raises(ConfigurationError) as caught:
        load(site)

    assert (
        str(caught.value) == f"{site}, line 6: block 'rmq' (plugin 'broker'): {problem}"
    )


def test_a_plugins_own_check_runs_when_the_file_is_read(
    write: Write, config_calls: Any
) -> None:
    site = write("site.yml", "version: 1\nsized:\n  plugin: checked\n  size: -1\n")

    with pytest.raises(ConfigurationError) as caught:
        load(site)

    # The problem names `size`, so it points at that key's line.
    assert str(caught.value) == (
        f"{site}, line 4: block 'sized' (plugin 'checked'): `size` must be at least 0"
    )
    assert config_calls.calls == []


def test_a_plugins_own_check_waits_for_the_types_and_changes_nothing(
    write: Write, config_calls: Any
) -> None:
    wrong_type = write("a.yml", "version: 1\nsized:\n  plugin: checked\n  size: x\n")
    with pytest.raises(ConfigurationError) as caught:
        load(wrong_type)
    assert str(caught.value).endswith("key 'size' must be of type int, not str")

    fine = write(
        "b.yml",
        "version: 1\nsized: {plugin: checked, size: 3}\nenvironments: {e: [sized]}\n",
    )
    load(fine).activate(["e"])
    assert config_calls.calls == [("checked", {"size": 3})]


@pytest.mark.parametrize("value", ["[a, b]", "7", "''", "~"])
def test_a_block_that_is_neither_a_mapping_nor_a_path_is_an_error(
    write: Write, value: str
) -> None:
    site = write("site.yml", f"version: 1\nrmq: {value}\n")

    with pytest.raises(ConfigurationError, match=rf"{site}, line 2: block 'rmq': is "):
        load(site)


def test_an_unknown_plugin_warns_at_load_and_is_skipped_at_activation(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    site = write(
        "site.yml",
        """
        version: 1
        graylog: {plugin: graylog, host: example, password: s3cr3t}
        environments: {live: [graylog]}
        """,
    )

    with caplog.at_level(logging.WARNING):
        configuration = load(site)
    warnings = [record.getMessage() for record in caplog.records]
    configuration.activate(["live"])

    assert warnings == [
        f"{site}, line 2: block 'graylog': configuration plugin 'graylog' is not "
        "installed; the block is skipped"
    ]
    assert configuration.plugin("graylog") is None
    assert configuration.block_settings("graylog") is None
    assert configuration.describe()["blocks"]["graylog"]["status"] == (
        "skipped: not installed"
    )


def test_an_unknown_plugin_in_a_block_file_warns_when_it_is_read(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    block_file = write("gl.yml", "plugin: graylog\n")
    site = write("site.yml", "version: 1\ngl: gl.yml\nenvironments: {live: [gl]}\n")

    with caplog.at_level(logging.WARNING):
        configuration = load(site)
        assert caplog.records == []
        configuration.activate(["live"])

    assert [record.getMessage() for record in caplog.records] == [
        f"{block_file}: block 'gl' (declared in {site}, line 2): configuration plugin "
        "'graylog' is not installed; the block is skipped"
    ]


def test_an_undeclared_key_of_a_closed_plugin_warns(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    site = write(
        "site.yml",
        "version: 1\nrmq:\n  plugin: broker\n  host: h\n  port: 1\n  hots: h\n",
    )

    with caplog.at_level(logging.WARNING):
        load(site)

    assert [record.getMessage() for record in caplog.records] == [
        f"{site}, line 6: block 'rmq' (plugin 'broker'): key 'hots' is not a setting "
        "of this plugin (it knows: host, password, port, username, vhost); check its "
        "spelling"
    ]


def test_an_open_keys_plugin_accepts_any_key_silently(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    site = write("site.yml", "version: 1\ns:\n  plugin: storage\n  any.key: 1\n")

    with caplog.at_level(logging.DEBUG, logger="zocalo_core"):
        load(site)

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_declared_secrets_of_a_closed_plugin_are_masked_as_declared() -> None:
    record = ConfigPlugin(
        "closed",
        lambda block, site: None,
        "",
        keys=(ConfigKey("pin", (str,), secret=True), ConfigKey("api_key", (str,))),
    )

    masked = mask_settings({"pin": "1234", "api_key": "public", "other": "x"}, record)

    assert masked == {"pin": MASK, "api_key": "public", "other": "x"}


def test_credential_like_keys_are_masked_at_any_depth_for_open_plugins() -> None:
    settings = {
        "handlers": {"gelf": {"host": "h", "Password": "p", "items": [{"token": 1}]}},
        "ssh_key": "k",
        "key": "k",
        "keyboard": "not a secret",
        "db_passwd": "p",
        "client_secret": "p",
    }

    masked = mask_settings(settings, None)

    assert masked == {
        "handlers": {
            "gelf": {"host": "h", "Password": MASK, "items": [{"token": MASK}]}
        },
        "ssh_key": MASK,
        "key": MASK,
        "keyboard": "not a secret",
        "db_passwd": MASK,
        "client_secret": MASK,
    }


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("PASSWD", True),
        ("api_token", True),
        ("aws_secret_access", True),
        ("private_key", True),
        ("Key", True),
        ("keys", False),
        ("monkey", False),
        ("host", False),
    ],
)
def test_looks_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


@pytest.mark.parametrize("value", ["5672", "[5672, 5673]", "'a,b'"])
def test_a_key_with_no_types_accepts_any_value(value: str) -> None:
    document = parse_yaml(f"port: {value}\n", Path("site.yml"))
    record = ConfigPlugin(
        "any", lambda block, site: None, "", keys=(ConfigKey("port", (), True),)
    )
    here = Location(Path("site.yml"), 1)
    block = ResolvedBlock("b", "any", document.data, here, {"port": here}, "block 'b'")
    problems = Problems()

    validate_block(block, record, problems)

    assert problems.messages == []
