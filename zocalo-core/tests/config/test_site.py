"""SiteConfiguration: activation, plugin results, storage, transport, describe."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import ConfigurationError, SiteConfiguration, load
from zocalo_core._config import MASK

Write = Callable[[str, str], Path]

SITE = """
version: 1
storage:
  plugin: storage
  zocalo.recipe_directory: recipes
  zocalo.go.fallback_location: spool
more-storage:
  plugin: storage
  zocalo.go.fallback_location: elsewhere
rmq:
  plugin: broker
  host: 127.0.0.1
  port: 5672
  password: s3cr3t-hunter2
rmq-failover:
  plugin: broker
  host: 127.0.0.2
  port: 5673
first: {plugin: recorder, n: 1}
second: {plugin: recorder, n: 2}
environments:
  embedded: [storage]
  live:
    plugins: [storage, rmq]
  failover: [rmq-failover]
  both: [first, second]
  production: live
  default: embedded
"""


@pytest.fixture
def site(write: Write) -> SiteConfiguration:
    return load(write("site.yml", SITE))


def test_activate_runs_each_block_with_its_settings_without_the_plugin_key(
    site: SiteConfiguration, config_calls: Any
) -> None:
    assert site.activate(["both"]) == ("both",)

    assert config_calls.calls == [("recorder", {"n": 1}), ("recorder", {"n": 2})]
    assert site.active_environments == ("both",)


def test_activating_an_environment_twice_runs_its_plugins_once(
    site: SiteConfiguration, config_calls: Any
) -> None:
    site.activate(["both"])
    assert site.activate(["both"]) == ("both",)

    assert config_calls.plugins() == ["recorder", "recorder"]
    assert site.active_environments == ("both",)


def test_a_block_listed_by_two_environments_runs_once(
    site: SiteConfiguration, config_calls: Any
) -> None:
    site.activate(["live", "production"])

    assert config_calls.plugins() == ["broker"]
    assert site.active_environments == ("live", "production")


def test_a_single_name_is_one_environment_not_its_letters(
    site: SiteConfiguration,
) -> None:
    assert site.activate("live") == ("live",)


def test_an_unknown_environment_is_an_error_listing_the_defined_ones(
    site: SiteConfiguration,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        site.activate(["embedded", "staging"])

    assert str(caught.value) == (
        f"environment 'staging' is not defined; {site.path} defines: both, default, "
        "embedded, failover, live, production"
    )
    assert site.active_environments == ()


def test_an_environment_asked_of_an_empty_configuration_is_an_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SiteConfiguration().activate(["live"])

    assert str(caught.value) == (
        "environment 'live' is not defined; no site configuration file is loaded; "
        "pass -c FILE or set ZOCALO_CONFIG"
    )


def test_default_is_used_when_nothing_is_asked_for(site: SiteConfiguration) -> None:
    assert site.activate() == ("default",)
    assert site.storage["zocalo.recipe_directory"] == "recipes"


def test_no_default_environment_activates_nothing(write: Write) -> None:
    configuration = load(write("site.yml", "version: 1\nenvironments: {a: []}\n"))

    assert configuration.activate() == ()
    assert configuration.active_environments == ()


def test_default_false_activates_nothing(site: SiteConfiguration) -> None:
    assert site.activate(default=False) == ()
    assert site.active_environments == ()


def test_zocalo_default_env_beats_default(
    site: SiteConfiguration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOCALO_DEFAULT_ENV", "live")

    assert site.activate() == ("live",)
    assert site.block_settings("broker") is not None


def test_requested_environments_beat_zocalo_default_env(
    site: SiteConfiguration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOCALO_DEFAULT_ENV", "live")

    assert site.activate(["embedded"]) == ("embedded",)


def test_zocalo_default_env_naming_an_undefined_environment_says_so(
    site: SiteConfiguration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOCALO_DEFAULT_ENV", "staging")

    with pytest.raises(ConfigurationError) as caught:
        site.activate()

    assert str(caught.value).startswith(
        "environment 'staging' (from ZOCALO_DEFAULT_ENV) is not defined; "
        f"{site.path} defines: both,"
    )


def test_plugin_is_none_until_activated_and_then_the_last_result(
    site: SiteConfiguration,
) -> None:
    assert site.plugin("recorder") is None

    site.activate(["both"])

    assert site.plugin("recorder") == {"from": "recorder", "n": 2}
    assert site.plugin("not-a-plugin") is None


def test_storage_blocks_merge_with_later_values_winning(write: Write) -> None:
    configuration = load(
        write(
            "site.yml",
            SITE.replace("embedded: [storage]", "embedded: [storage, more-storage]"),
        )
    )
    configuration.activate(["embedded"])

    assert configuration.storage == {
        "zocalo.recipe_directory": "recipes",
        "zocalo.go.fallback_location": "elsewhere",
    }


def test_storage_is_empty_without_storage_blocks_and_is_a_copy(
    site: SiteConfiguration,
) -> None:
    assert site.storage == {}

    site.activate(["embedded"])
    site.storage["zocalo.recipe_directory"] = "changed"

    assert site.storage["zocalo.recipe_directory"] == "recipes"


def test_block_settings_merges_the_active_blocks_of_one_plugin(
    site: SiteConfiguration,
) -> None:
    assert site.block_settings("broker") is None

    site.activate(["live", "failover"])

    assert site.block_settings("broker") == {
        "host": "127.0.0.2",
        "port": 5673,
        "password": "s3cr3t-hunter2",
    }


def test_a_plugin_changing_its_settings_changes_nothing_kept(write: Write) -> None:
    configuration = load(
        write(
            "site.yml",
            "version: 1\nm: {plugin: meddler, host: h}\nenvironments: {e: [m]}\n",
        )
    )
    configuration.activate(["e"])

    assert configuration.block_settings("meddler") == {"host": "h"}
    assert configuration.describe()["blocks"]["m"]["settings"] == {"host": "h"}


def test_a_plugin_that_raises_becomes_an_error_naming_the_block(write: Write) -> None:
    path = write(
        "site.yml", "version: 1\nf: {plugin: failing}\nenvironments: {e: [f]}\n"
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path).activate(["e"])

    assert str(caught.value) == (
        f"{path}, line 2: block 'f' (plugin 'failing'): activating it failed: "
        "RuntimeError: the plugin fell over"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("blocks", "environment", "override", "expected"),
    [
        ("", "[]", None, None),
        ("", "[]", "stomp", "stomp"),
        ("", "[]", "PikaTransport", "pika"),
        ("t: {plugin: transport, default: StompTransport}\n", "[t]", None, "stomp"),
        ("t: {plugin: transport, default: mybroker}\n", "[t]", None, "mybroker"),
        ("t: {plugin: transport, default: pika}\n", "[t]", "memory", "memory"),
        (
            "s: {plugin: storage, zocalo.default_transport: PikaTransport}\n",
            "[s]",
            None,
            "pika",
        ),
        (
            "t: {plugin: transport, default: stomp}\n"
            "s: {plugin: storage, zocalo.default_transport: pika}\n",
            "[s, t]",
            None,
            "stomp",
        ),
    ],
)
def test_transport_name_prefers_override_then_transport_block_then_storage(
    write: Write,
    blocks: str,
    environment: str,
    override: str | None,
    expected: str | None,
) -> None:
    path = write("site.yml", f"version: 1\n{blocks}environments:\n  e: {environment}\n")
    configuration = load(path)
    configuration.activate(["e"])

    assert configuration.transport_name(override) == expected


def test_a_transport_block_needs_a_default(write: Write) -> None:
    path = write("site.yml", "version: 1\nt: {plugin: transport}\n")

    with pytest.raises(ConfigurationError, match="required key 'default'"):
        load(path)


def test_describe_masks_secrets_and_shows_the_rest(site: SiteConfiguration) -> None:
    site.activate(["live"])

    description = site.describe()

    assert description["active_environments"] == ["live"]
    assert description["blocks"]["rmq"] == {
        "plugin": "broker",
        "from": f"{site.path}, line 9",
        "status": "activated",
        "settings": {"host": "127.0.0.1", "port": 5672, "password": MASK},
    }
    assert "s3cr3t-hunter2" not in repr(description)


def test_secrets_never_reach_the_logs(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        "site.yml",
        SITE + "odd: {plugin: graylog, password: s3cr3t-hunter2}\n"
        "rmq-typo: {plugin: broker, host: h, port: 1, passwrod: s3cr3t-hunter2}\n",
    )

    with caplog.at_level(logging.DEBUG):
        configuration = load(path)
        configuration.activate(["live", "failover"])
        configuration.describe()
        repr(configuration)

    assert caplog.records
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "s3cr3t-hunter2" not in logged


def test_repr_summarises_without_values(site: SiteConfiguration) -> None:
    site.activate(["live"])

    text = repr(site)

    assert text == (
        f"<SiteConfiguration {site.path}: 6 environments, 6 blocks (0 block files "
        "not read), active: live>"
    )
    assert repr(SiteConfiguration()) == "<SiteConfiguration empty>"
