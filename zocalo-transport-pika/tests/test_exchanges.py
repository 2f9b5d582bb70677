"""Sends through a site's exchanges, beyond the EXCH rules of the conformance suite:
what a missing exchange does to the shared publish channel, how errors read, and a
recipe node's `exchange` on the real broker."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from zocalo_core import RecipeWrapper, TransportError
from zocalo_core.testing import Collector
from zocalo_core.transport import DEATHS_HEADER, ConnectionState, dead_letter_queue
from zocalo_transport_pika import PikaTransport

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]
Bind = Callable[[str, str, str], None]
#: transport, exchange, routing key, bound queue, the queue's collector
Routed = tuple[PikaTransport, str, str, str, Collector]


def test_a_missing_exchange_fails_its_send_and_no_other(
    connected: Connect,
    names: Names,
    plain_sender: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A publish to a missing exchange would close the shared publish channel; the
    exchange is checked first, so sends in flight on other threads are not hurt."""
    transport = connected()
    queue, missing = names("plain"), names("missing-exchange")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    sender = plain_sender(transport, queue, 200)
    with caplog.at_level(logging.WARNING, "zocalo_transport_pika"), sender.running():
        for _ in range(5):
            with pytest.raises(TransportError, match="no exchange") as refused:
                transport.send("some.key", "lost?", exchange=missing)
            assert repr(missing) in str(refused.value)
    assert sender.failures == []
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


def test_an_exchange_that_refuses_publishes_hurts_no_other_send(
    connected: Connect, names: Names, raw: Any, plain_sender: Any
) -> None:
    """An internal exchange exists but refuses publishes (403): the send raises, the
    next ones fail before reaching RabbitMQ, and plain sends never notice."""
    transport = connected()
    internal, queue = names("internal-exchange"), names("plain")
    raw.channel().exchange_declare(internal, exchange_type="direct", internal=True)
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    sender = plain_sender(transport, queue, 300)
    with sender.running():
        with pytest.raises(TransportError, match="internal exchange"):
            transport.send("some.key", "refused", exchange=internal)
        for _ in range(5):
            with pytest.raises(TransportError, match="refused a publish"):
                transport.send("some.key", "refused again", exchange=internal)
    assert sender.failures == []
    assert sorted(m.body for m in collector.wait_for(300, 10)) == list(range(300))


def test_a_committed_send_routed_nowhere_is_kept_as_a_dead_letter(
    routed: Routed, names: Names
) -> None:
    """RabbitMQ tells only at the commit that a send went nowhere, when the ack and
    the other sends have taken effect: the message goes to dlq.<key>, not lost."""
    transport, exchange, _, _, collector = routed
    inputs, others = names("input"), names("other-output")
    unbound = names("unbound-key")
    taken = Collector(transport)
    subscription = transport.subscribe(inputs, taken)
    kept = Collector(transport, ack=True)
    transport.subscribe(dead_letter_queue(unbound), kept, decode=False)
    other = Collector(transport, ack=True)
    transport.subscribe(others, other)
    transport.send(inputs, {"image": 1})
    (message,) = taken.wait_for(1, 5)
    transaction = transport.transaction_begin(subscription)
    transport.send(
        unbound,
        {"result": 1},
        headers={"h": 1},
        exchange=exchange,
        transaction=transaction,
    )
    transport.send(others, "other output", transaction=transaction)
    transport.ack(message, transaction=transaction)
    with pytest.raises(TransportError) as refused:
        transport.transaction_commit(transaction)
    text = str(refused.value)
    assert "the transaction was committed" in text
    assert dead_letter_queue(unbound) in text
    (letter,) = kept.wait_for(1, 5)
    assert json.loads(letter.raw) == {"result": 1}
    assert letter.headers["h"] == 1
    (death,) = letter.headers[DEATHS_HEADER]
    assert death["reason"] == "unroutable"
    assert (death["queue"], death["exchange"]) == (unbound, exchange)
    assert death["attempts"] == 0
    assert [m.body for m in other.wait_for(1, 5)] == ["other output"]
    taken.assert_quiet(0.5, 1)
    collector.assert_quiet(0.1, 0)
