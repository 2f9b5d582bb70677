"""The pika settings: one parser for the site file's `pika` block and keywords."""

from __future__ import annotations

import pytest
from zocalo_core import ConfigurationError
from zocalo_transport_pika import PikaSettings, PikaTransport
from zocalo_transport_pika._settings import _FIELDS, CONFIG_KEYS


def parse(**values: object) -> PikaSettings:
    return PikaSettings.from_mapping(values, "test")


def test_defaults() -> None:
    settings = parse()
    assert settings.endpoints == (("localhost", 5672),)
    assert (settings.username, settings.password, settings.vhost) == (
        "guest",
        "guest",
        "/",
    )
    assert settings.delivery_limit == 5


@pytest.mark.parametrize(
    ("host", "port", "endpoints"),
    [
        ("rmq", 5673, (("rmq", 5673),)),
        ("a, b", 5672, (("a", 5672), ("b", 5672))),
        (["a", "b"], "5672,5673", (("a", 5672), ("b", 5673))),
        (["a", "b"], [1, 2], (("a", 1), ("b", 2))),
        ("a,b,c", "7", (("a", 7), ("b", 7), ("c", 7))),
    ],
)
def test_failover_hosts_and_ports(
    host: object, port: object, endpoints: tuple[tuple[str, int], ...]
) -> None:
    assert parse(host=host, port=port).endpoints == endpoints


def test_ports_must_match_hosts() -> None:
    with pytest.raises(ConfigurationError, match="one port for every host"):
        parse(host="a,b,c", port=[1, 2])


@pytest.mark.parametrize("port", [0, 70000, "abc", True, 1.5, "", []])
def test_bad_ports(port: object) -> None:
    with pytest.raises(ConfigurationError, match="port"):
        parse(port=port)


@pytest.mark.parametrize("host", ["", 5, [], ["a", 3]])
def test_bad_hosts(host: object) -> None:
    with pytest.raises(ConfigurationError, match="host"):
        parse(host=host)


def test_unknown_key_lists_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="hots") as error:
        parse(hots="x")
    assert "heartbeat" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("heartbeat", -1),
        ("heartbeat", True),
        ("delivery_limit", 0),
        ("call_timeout", 0),
        ("call_timeout", float("inf")),
        ("username", 5),
        ("reconnect_attempts", 1.5),
    ],
)
def test_bad_values(key: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=key):
        parse(**{key: value})


def test_password_never_shown() -> None:
    settings = parse(password="s3cret-value")
    assert "s3cret-value" not in repr(settings)
    transport = PikaTransport(settings)
    assert "s3cret-value" not in repr(transport)
    with pytest.raises(ConfigurationError) as error:
        parse(password=12345)
    assert "12345" not in str(error.value)


def test_transport_takes_settings_mapping_or_keywords() -> None:
    by_keywords = PikaTransport(host="h1", port=1, delivery_limit=3)
    assert by_keywords.settings.endpoints == (("h1", 1),)
    assert by_keywords.delivery_limit == 3
    by_mapping = PikaTransport({"host": "h2", "vhost": "/v"})
    assert by_mapping.settings.vhost == "/v"
    overridden = PikaTransport(parse(host=["a", "b"], port=[1, 2]), vhost="/x")
    assert overridden.settings.endpoints == (("a", 1), ("b", 2))
    assert overridden.settings.vhost == "/x"
    with pytest.raises(ConfigurationError, match="bogus"):
        PikaTransport(bogus=1)


def test_topology_settings() -> None:
    settings = parse(declare=False, queue_type="classic", single_active_consumer="a, b")
    assert settings.declare is False
    assert settings.queue_type == "classic"
    assert settings.single_active_consumer == frozenset({"a", "b"})
    assert parse(single_active_consumer=["c"]).single_active_consumer == {"c"}
    defaults = parse()
    assert (defaults.declare, defaults.queue_type) == (True, "quorum")
    assert defaults.single_active_consumer == frozenset()
    assert defaults.delay_exchange is None
    assert parse(delay_exchange="delayed").delay_exchange == "delayed"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"queue_type": "stream"}, "`queue_type` must be one of quorum, classic"),
        ({"declare": "no"}, "`declare` must be true or false"),
        ({"single_active_consumer": ["a", 3]}, "`single_active_consumer` must be"),
        ({"delay_exchange": ""}, "`delay_exchange` must be an exchange name"),
        ({"delay_exchange": "a b"}, "`delay_exchange` must be an exchange name"),
        ({"delay_exchange": 3}, "`delay_exchange` must be an exchange name"),
    ],
)
def test_bad_topology_settings(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        parse(**values)


def test_new_settings_survive_keyword_overrides() -> None:
    """`PikaTransport(settings, **more)` keeps the TLS and topology settings."""
    settings = parse(
        tls=True, ca_certificate="ca.pem", single_active_consumer=["q"], declare=False
    )
    transport = PikaTransport(settings, call_timeout=3.0)
    assert transport.settings.single_active_consumer == {"q"}
    assert transport.settings.ca_certificate == "ca.pem"
    assert transport.settings.declare is False
    assert transport.settings.endpoints == (("localhost", 5671),)


def test_every_setting_is_listed_for_the_site_file() -> None:
    """`zocalo config` shows the keys the block knows; none may be missing."""
    listed = {key.name for key in CONFIG_KEYS}
    assert listed == set(_FIELDS)
