"""How messages are laid out on RabbitMQ, checked through pika's own codec."""

from __future__ import annotations

import datetime
from typing import Any

import pika.spec
import pytest
from zocalo_core import MessageError
from zocalo_core.transport import OutgoingMessage
from zocalo_transport_pika._codec import (
    EXPIRES_HEADER,
    HEADERS_HEADER,
    decode_properties,
    delay_bucket_ms,
    encode_properties,
    with_broker_deaths,
)

HEADERS: dict[str, Any] = {
    "text": "x",
    "ratio": 1.5,
    "yes": True,
    "nothing": None,
    "big": 2**62,
    "list": [1, "a", [None, 2.5]],
    "dict": {"k": {"n": [1.5, False]}},
    "workflows-recipe": True,
    "x-zocalo-deaths": [{"queue": "q", "attempts": 1}],
    "CC": ["elsewhere"],
}


def wire(properties: pika.spec.BasicProperties) -> pika.spec.BasicProperties:
    """The properties as a consumer gets them, after pika's encoding."""
    decoded = pika.spec.BasicProperties()
    decoded.decode(b"".join(properties.encode()))
    return decoded


def encoded(outgoing: OutgoingMessage, **options: Any) -> pika.spec.BasicProperties:
    options = {"message_id": "m1", "persistent": True, "broker_ttl": False, **options}
    return wire(encode_properties(outgoing, **options))


def test_headers_round_trip_with_their_types() -> None:
    properties = encoded(OutgoingMessage("q", b"{}", HEADERS))
    incoming = decode_properties(properties)
    assert incoming.headers == HEADERS
    for name, value in HEADERS.items():
        assert type(incoming.headers[name]) is type(value)
    assert incoming.message_id == "m1"


def test_native_mirror_for_other_clients() -> None:
    native = encoded(OutgoingMessage("q", b"{}", HEADERS)).headers
    assert native["workflows-recipe"] is True
    assert native["text"] == "x"
    # Not carried natively: floats (pika cannot), x- names and names RabbitMQ acts on.
    for name in ("ratio", "list", "dict", "x-zocalo-deaths", "CC"):
        assert name not in native
    assert HEADERS_HEADER in native


def test_no_headers_no_header_table() -> None:
    properties = encoded(OutgoingMessage("q", b"{}", {}))
    assert properties.headers is None
    assert decode_properties(properties).headers == {}


def test_expiration() -> None:
    outgoing = OutgoingMessage("q", b"{}", {}, expiration=1.5)
    plain = encoded(outgoing, now=1000.0)
    assert plain.headers[EXPIRES_HEADER] == 1_001_500
    assert plain.expiration is None
    assert decode_properties(plain).expired(now=1001.6)
    assert not decode_properties(plain).expired(now=1001.4)
    assert encoded(outgoing, broker_ttl=True).expiration == "1500"
    delayed = OutgoingMessage("q", b"{}", {}, delay=2.0, expiration=1.5)
    assert encoded(delayed, broker_ttl=True).expiration is None


def test_oversized_headers_refused() -> None:
    with pytest.raises(MessageError, match="AMQP frame"):
        encode_properties(
            OutgoingMessage("q", b"{}", {"big": "x" * 200_000}),
            message_id="m",
            persistent=True,
            broker_ttl=False,
        )


def test_headers_of_other_clients() -> None:
    when = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    properties = pika.spec.BasicProperties(
        headers={
            "workflows-recipe": True,
            "raw": b"bytes",
            "when": when,
            "x-delivery-count": 2,
            "x-first-death-queue": "q",
            "x-death": [],
        }
    )
    incoming = decode_properties(wire(properties))
    assert incoming.headers == {
        "workflows-recipe": True,
        "raw": "bytes",
        "when": "2025-01-02T03:04:05+00:00",
    }
    assert incoming.delivery_count == 2
    assert incoming.message_id is None


def test_broker_deaths_become_entries() -> None:
    earlier = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    later = datetime.datetime(2025, 1, 2, tzinfo=datetime.timezone.utc)
    x_death = [
        {"reason": "delivery_limit", "queue": "q", "time": later, "count": 1},
        {"reason": "expired", "queue": "zocalo.delay.1000", "time": earlier},
    ]
    properties = pika.spec.BasicProperties(
        headers={HEADERS_HEADER: '{"app": 1}', "x-death": x_death}
    )
    incoming = decode_properties(wire(properties))
    headers = with_broker_deaths(incoming.headers, incoming.broker_deaths, 5)
    deaths: Any = headers["x-zocalo-deaths"]
    (entry,) = deaths
    assert headers["app"] == 1
    assert entry["queue"] == "q"
    assert entry["reason"] == "delivery-limit"
    assert entry["attempts"] == 5
    assert entry["time"] == "2025-01-02T00:00:00+00:00"
    assert entry["error"]


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (0.001, 10),
        (0.5, 500),
        (0.501, 510),
        (1.0, 1000),
        (1.01, 1100),
        (2.0, 2000),
        (90.5, 91000),
        (3600.0, 3_600_000),
        (3601.0, 3_660_000),
    ],
)
def test_delay_buckets_never_early(delay: float, expected: int) -> None:
    assert delay_bucket_ms(delay) == expected
    assert delay_bucket_ms(delay) >= delay * 1000


def test_expired_by_the_broker_is_not_a_dead_letter() -> None:
    """A TTL another client set ran out in a queue: dropped, not delivered."""
    expired_in_queue = {"reason": "expired", "queue": "q", "count": 1}
    due_after_delay = {"reason": "expired", "queue": "zocalo.delay.1000", "count": 1}
    for x_death, expired in (([expired_in_queue], True), ([due_after_delay], False)):
        properties = pika.spec.BasicProperties(headers={"x-death": x_death})
        assert decode_properties(wire(properties)).expired() is expired
