"""Sends through a site's exchanges, beyond the EXCH rules of the conformance suite:
what a missing exchange does to the shared publish channel, how errors read, and a
recipe node's `exchange` on the real broker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from zocalo_core import RecipeWrapper, TransportError
from zocalo_core.testing import Collector
from zocalo_core.transport import ConnectionState
from zocalo_transport_pika import PikaTransport

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]
Bind = Callable[[str, str, str], None]
#: transport, exchange, routing key, bound queue, the queue's collector
Routed = tuple[PikaTransport, str, str, str, Collector]


def test_a_missing_exchange_fails_its_send_and_no_other(
    connected: Connect, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """A publish to a missing exchange would close the shared publish channel; the
    exchange is checked first, so sends in flight on other threads are not hurt."""
    transport = connected()
    queue, missing = names("plain"), names("missing-exchange")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    failures: list[BaseException] = []

    def keep_sending() -> None:
        try:
            for number in range(200):
                transport.send(queue, number)
        except BaseException as exc:
            failures.append(exc)

    sender = threading.Thread(target=keep_sending)
    with caplog.at_level(logging.WARNING, "zocalo_transport_pika"):
        sender.start()
        for _ in range(5):
            with pytest.raises(TransportError, match="no exchange") as refused:
                transport.send("some.key", "lost?", exchange=missing)
            assert repr(missing) in str(refused.value)
        sender.join(30)
    assert not sender.is_alive()
    assert failures == []
    assert sorted(m.body for m in collector.wait_for(200, 10)) == list(range(200))
    assert transport.state is ConnectionState.CONNECTED
    assert not [r for r in caplog.records if "reconnect" in r.getMessage().lower()]


def test_an_unbound_key_names_the_exchange(routed: Routed, names: Names) -> None:
    transport, exchange, _, _, _ = routed
    other_key = names("unbound-key")
    with pytest.raises(TransportError) as refused:
        transport.send(other_key, "x", exchange=exchange)
    text = str(refused.value)
    assert f"{other_key!r} through the exchange {exchange!r}" in text
    assert "nothing was delivered" in text


@pytest.fixture
def routed(connected: Connect, names: Names, exchange_binder: Bind) -> Routed:
    """A transport, an exchange routing a key to a queue, and that queue's collector."""
    transport = connected()
    exchange, key, queue = names("exchange"), names("key"), names("bound")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    exchange_binder(exchange, key, queue)
    return transport, exchange, key, queue, collector


def test_an_exchange_deleted_after_use_is_found_missing(
    routed: Routed, raw: Any
) -> None:
    transport, exchange, key, queue, collector = routed
    transport.send(key, "first", exchange=exchange)
    assert [m.body for m in collector.wait_for(1, 5)] == ["first"]
    raw.channel().exchange_delete(exchange)
    with pytest.raises(TransportError, match="no exchange"):
        transport.send(key, "second", exchange=exchange)
    transport.send(queue, "straight to the queue")
    assert collector.wait_for(2, 5)[1].body == "straight to the queue"


def test_a_recipe_node_with_an_exchange_sends_through_it(routed: Routed) -> None:
    transport, exchange, key, queue, collector = routed
    recipe = {
        "1": {"queue": key, "exchange": exchange, "parameters": {"n": 1}},
        "start": [[1, {"images": 3}]],
    }
    RecipeWrapper(recipe=recipe, transport=transport).start()
    (message,) = collector.wait_for(1, 5)
    assert message.body["payload"] == {"images": 3}
    assert message.body["recipe-pointer"] == 1
    assert message.destination == queue


def test_a_key_named_like_a_temporary_queue_is_no_excuse(
    routed: Routed, names: Names
) -> None:
    """A reply to a temporary queue that has gone is dropped with a WARNING (TEMP-2);
    a key that only looks like one, through an exchange, is still an error."""
    transport, exchange, _, _, _ = routed
    with pytest.raises(TransportError, match="could not route"):
        transport.send(f"transient.{names('key')}", "x", exchange=exchange)
