"""Registration: the `pika` transport and config plugin, and a site file using them."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import zocalo_core
from zocalo_core import ConfigurationError, get_registry
from zocalo_transport_pika import PikaSettings, PikaTransport
from zocalo_transport_pika._plugin import make_pika_transport


def write_site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_transport_registered_with_legacy_alias() -> None:
    registry = get_registry()
    record = registry.get("transport", "pika")
    assert registry.get("transport", "PikaTransport") is record
    assert record.aliases == ("PikaTransport",)
    assert isinstance(record.factory(None), PikaTransport)


def test_config_plugin_keys() -> None:
    record = get_registry().get("config plugin", "pika")
    keys = {key.name: key for key in record.keys}
    assert {"host", "port", "username", "password", "vhost"} <= set(keys)
    assert keys["password"].secret
    assert keys["port"].types == ()
    assert not any(key.required for key in keys.values())


def test_factory_from_site_file(tmp_path: Path) -> None:
    path = write_site(
        tmp_path,
        """\
        version: 1
        rabbitmq:
          plugin: pika
          host: [rmq1.example.org, rmq2.example.org]
          port: "5672,5673"
          username: zocalo
          password: not-shown
          vhost: /zocalo
          heartbeat: 30
          delivery_limit: 3
        transport:
          plugin: transport
          default: PikaTransport
        environments:
          live: [rabbitmq, transport]
        """,
    )
    site = zocalo_core.load(path)
    site.activate(["live"])
    settings = site.plugin("pika")
    assert isinstance(settings, PikaSettings)
    assert site.transport_name() == "pika"
    record = get_registry().get("transport", "pika")
    transport = record.factory(site)
    assert isinstance(transport, PikaTransport)
    assert transport.settings == settings
    assert transport.settings.endpoints == (
        ("rmq1.example.org", 5672),
        ("rmq2.example.org", 5673),
    )
    assert (transport.settings.username, transport.settings.vhost) == (
        "zocalo",
        "/zocalo",
    )
    assert transport.settings.heartbeat == 30
    assert transport.delivery_limit == 3
    assert "not-shown" not in repr(site.describe())


def test_factory_without_site_uses_defaults() -> None:
    transport = make_pika_transport(None)
    assert transport.settings == PikaSettings()


def test_bad_block_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_site(
        tmp_path,
        """\
        version: 1
        rabbitmq:
          plugin: pika
          host: a,b,c
          port: [1, 2]
        environments:
          live: [rabbitmq]
        """,
    )
    # Found when the file is read, as `zocalo config check` reads it.
    with pytest.raises(ConfigurationError, match="rabbitmq") as error:
        zocalo_core.load(path)
    assert "one port for every host" in str(error.value)


def test_a_bad_value_is_found_when_the_file_is_read_and_no_secret_shown(
    tmp_path: Path,
) -> None:
    path = write_site(
        tmp_path,
        """\
        version: 1
        rabbitmq:
          plugin: pika
          password: the-secret-one
          delay_exchange: "not one"
        """,
    )
    with pytest.raises(ConfigurationError) as error:
        zocalo_core.load(path)
    text = str(error.value)
    assert "`delay_exchange` must be an exchange name" in text
    assert "the-secret-one" not in text
    assert "not one" not in text


def test_site_file_tls_and_topology_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_site(
        tmp_path,
        """\
        version: 1
        rabbitmq:
          plugin: pika
          host: rmq.example.org
          tls: true
          ca_certificate: /etc/zocalo/ca.pem
          server_name: rabbitmq.example.org
          declare: false
          queue_type: classic
          single_active_consumer: [processing.one, processing.two]
          cancelled_consumer_timeout: 120
          delay_exchange: delayed
        environments:
          live: [rabbitmq]
        """,
    )
    with caplog.at_level(logging.WARNING):
        site = zocalo_core.load(path)
        site.activate(["live"])
    assert caplog.records == []
    settings = site.plugin("pika")
    assert isinstance(settings, PikaSettings)
    assert settings.endpoints == (("rmq.example.org", 5671),)
    assert (settings.tls, settings.verify, settings.declare) == (True, True, False)
    assert settings.ca_certificate == "/etc/zocalo/ca.pem"
    assert settings.server_name == "rabbitmq.example.org"
    assert settings.queue_type == "classic"
    assert settings.single_active_consumer == {"processing.one", "processing.two"}
    assert settings.cancelled_consumer_timeout == 120
    assert settings.delay_exchange == "delayed"
