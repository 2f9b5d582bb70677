"""`delay_exchange`: delayed sends through a site's delayed-message plugin exchange.

This RabbitMQ (Debian's 3.10) has no rabbitmq_delayed_message_exchange plugin, so these
tests check the transport's half of the contract against the real broker: the
exchange is checked and never declared, the target queue is bound to it under its
own name, and each message carries its delay in ms in the `x-delay` header that the
plugin reads. Where a test needs the exchange, it declares a plain direct exchange
under the site's name; that stand-in routes at once, so holding the message back,
the plugin's half, is not tested here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from zocalo_core import TransportError
from zocalo_core.testing import Collector
from zocalo_core.transport import Message, dead_letter_queue
from zocalo_transport_pika import PikaTransport
from zocalo_transport_pika._codec import delay_bucket_ms

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]
RawGet = Callable[..., tuple[Any, Any, bytes]]


@pytest.fixture
def site_exchange(names: Names, raw: Any) -> str:
    """What a site with the plugin has under this name; here a direct exchange."""
    name = names("delayed")
    raw.channel().exchange_declare(name, exchange_type="direct")
    return name


@pytest.fixture
def target(names: Names) -> str:
    return names("target")


def test_a_missing_delay_exchange_says_what_it_needs(
    connected: Connect, names: Names, target: str
) -> None:
    missing = names("delayed")
    transport = connected(delay_exchange=missing)
    collector = Collector(transport, ack=True)
    transport.subscribe(target, collector)
    with pytest.raises(TransportError) as refused:
        transport.send(target, "later", delay=1)
    text = str(refused.value)
    assert repr(missing) in text
    assert "rabbitmq_delayed_message_exchange" in text
    assert "x-delayed-message" in text
    transport.send(target, "now")
    assert [m.body for m in collector.wait_for(1, 5)] == ["now"]
    collector.assert_quiet(0.3)


def test_delays_travel_in_ms_through_the_site_exchange(
    connected: Connect, site_exchange: str, target: str, raw_get: RawGet
) -> None:
    transport = connected(delay_exchange=site_exchange)
    for delay, expected_ms in ((1.5, 1500), (0.25, 250), (2.007, 2007), (0.0001, 1)):
        transport.send(target, {"delay": delay}, headers={"step": 1}, delay=delay)
        method, properties, _ = raw_get(target)
        assert method.exchange == site_exchange
        assert method.routing_key == target
        assert properties.headers["x-delay"] == expected_ms
        assert properties.delivery_mode == 2
    # Not through the plugin: a delay of 0 is no delay.
    transport.send(target, "at once", delay=0)
    method, properties, _ = raw_get(target)
    assert method.exchange == ""
    assert "x-delay" not in (properties.headers or {})


def test_the_handler_sees_no_plugin_header(
    connected: Connect, site_exchange: str, target: str, raw: Any
) -> None:
    transport = connected(delay_exchange=site_exchange)
    collector = Collector(transport, ack=True)
    transport.subscribe(target, collector)
    transport.send(target, "ours", headers={"a": 1}, delay=0.5)
    (ours,) = collector.wait_for(1, 5)
    assert dict(ours.headers) == {"a": 1}
    # Another client's message with the plugin's header: still not an app header.
    theirs_properties = pika.BasicProperties(headers={"x-delay": 100, "b": 2})
    raw.channel().basic_publish(
        site_exchange, target, b'"theirs"', properties=theirs_properties
    )
    theirs = collector.wait_for(2, 5)[1]
    assert dict(theirs.headers) == {"b": 2}


def test_delayed_sends_in_a_transaction_go_through_the_site_exchange(
    connected: Connect, site_exchange: str, target: str, raw_get: RawGet
) -> None:
    transport = connected(delay_exchange=site_exchange)
    with transport.transaction() as transaction:
        transport.send(target, "committed", delay=0.75, transaction=transaction)
    method, properties, _ = raw_get(target)
    assert method.exchange == site_exchange
    assert properties.headers["x-delay"] == 750


def test_a_managed_topology_is_used_as_the_site_bound_it(
    connected: Connect, site_exchange: str, target: str, raw: Any, raw_get: RawGet
) -> None:
    """With `declare: false` the transport binds nothing: the site's binding is used."""
    channel = raw.channel()
    for name in (target, dead_letter_queue(target)):
        channel.queue_declare(name, durable=True)
    channel.queue_bind(target, site_exchange, routing_key="site-chosen-key")
    transport = connected(declare=False, delay_exchange=site_exchange)
    with pytest.raises(TransportError, match="could not route"):
        # The transport made no binding under the queue's own name.
        transport.send(target, "unbound", delay=0.5)
    channel.queue_bind(target, site_exchange, routing_key=target)
    transport.send(target, "bound by the site", delay=0.5)
    method, properties, _ = raw_get(target)
    assert (method.exchange, properties.headers["x-delay"]) == (site_exchange, 500)


def test_broadcasts_and_temporary_queues_keep_the_delay_queues(
    connected: Connect, names: Names, site_exchange: str
) -> None:
    """The stand-in routes at once, so a message that waits did not go through it."""
    topic = names("topic")
    transport = connected(delay_exchange=site_exchange)
    on_topic, on_temporary = Collector(), Collector(transport, ack=True)
    transport.subscribe_broadcast(topic, on_topic)
    temporary = transport.subscribe_temporary(on_temporary, hint="delay-exchange")
    for send, collector in (
        (lambda: transport.broadcast(topic, "later", delay=0.6), on_topic),
        (
            lambda: transport.send(temporary.destination, "later", delay=0.6),
            on_temporary,
        ),
    ):
        sent_at = time.monotonic()
        send()
        collector.wait_for(1, 5)
        assert time.monotonic() - sent_at >= 0.6 - 0.05


def test_a_site_exchange_deleted_after_use_is_checked_again(
    connected: Connect,
    site_exchange: str,
    target: str,
    names: Names,
    raw: Any,
    plain_sender: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a publish finds it gone, the exchange is checked before every use: the
    error names the plugin, and a consumer committing such sends keeps its channel.
    Sends to other queues never notice."""
    channel = raw.channel()
    inputs, plain = names("input"), names("plain")
    for name in (target, inputs, plain):
        for queue in (name, dead_letter_queue(name)):
            channel.queue_declare(queue, durable=True)
    channel.queue_bind(target, site_exchange, routing_key=target)
    transport = connected(declare=False, delay_exchange=site_exchange)
    taken = Collector(transport)
    subscription = transport.subscribe(inputs, taken)

    def commit_delayed_send(message: Message) -> None:
        transaction = transport.transaction_begin(subscription)
        transport.send(target, "later", delay=0.5, transaction=transaction)
        transport.ack(message, transaction=transaction)
        transport.transaction_commit(transaction)

    transport.send(inputs, 0)
    commit_delayed_send(taken.wait_for(1, 5)[0])
    channel.exchange_delete(site_exchange)
    sender = plain_sender(transport, plain, 200)
    with caplog.at_level(logging.WARNING, "zocalo_transport_pika"), sender.running():
        transport.send(inputs, 1)
        with pytest.raises(TransportError, match="404"):
            # The commit's burst reached RabbitMQ, which closed the channel.
            commit_delayed_send(taken.wait_for(2, 5)[1])
        again = taken.wait_for(3, 10)[2]
        assert (again.body, again.redelivered) == (1, True)
        with pytest.raises(TransportError, match="rabbitmq_delayed_message_exchange"):
            commit_delayed_send(again)
        transport.ack(again)
        with pytest.raises(TransportError, match="rabbitmq_delayed_message_exchange"):
            transport.send(target, "later", delay=0.5)
    assert sender.failures == []
    assert not [r for r in caplog.records if "not restarted" in r.getMessage()]
    taken.assert_quiet(0.5)


def test_delays_beyond_the_plugins_longest_use_the_delay_queues(
    connected: Connect, site_exchange: str, target: str, raw: Any, raw_get: RawGet
) -> None:
    """The plugin's x-delay is 32 bits of ms (49.7 days); longer waits in a queue."""
    transport = connected(delay_exchange=site_exchange)
    sixty_days = 60 * 86_400.0
    delay_queue = f"zocalo.delay.{delay_bucket_ms(sixty_days)}"
    try:
        transport.send(target, "much later", delay=sixty_days)
        transport.send(target, "sooner", delay=49 * 86_400.0)
        method, properties, _ = raw_get(target)
        assert method.exchange == site_exchange
        assert properties.headers["x-delay"] == 49 * 86_400_000
        waiting = raw.channel().queue_declare(delay_queue, passive=True)
        assert waiting.method.message_count == 1
    finally:
        raw.channel().queue_delete(delay_queue)
