"""A subscription that RabbitMQ cancels (its queue deleted) is subscribed again.

The queue is deleted from a plain pika connection of the test, which makes RabbitMQ
send `basic.cancel` to the transport's consumer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from zocalo_core import ConfigurationError
from zocalo_core.testing import Collector, wait_until
from zocalo_core.transport import ConnectionState, dead_letter_queue
from zocalo_transport_pika import PikaSettings, PikaTransport

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]


def cancellation_errors(caplog: pytest.LogCaptureFixture, queue: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "cancelled" in r.getMessage()
        if queue in r.getMessage()
    ]


def declare_managed(raw: Any, queue: str) -> None:
    channel = raw.channel()
    for name in (queue, dead_letter_queue(queue)):
        channel.queue_declare(name, durable=True)
    channel.close()


def test_the_bound_is_a_setting() -> None:
    assert PikaSettings().cancelled_consumer_timeout == 60.0
    settings = PikaSettings.from_mapping({"cancelled_consumer_timeout": 2}, "test")
    assert settings.cancelled_consumer_timeout == 2.0
    with pytest.raises(ConfigurationError, match="cancelled_consumer_timeout"):
        PikaSettings.from_mapping({"cancelled_consumer_timeout": 0}, "test")


@pytest.mark.broker
def test_a_deleted_queue_is_declared_again_and_consumed(
    connected: Connect,
    names: Names,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    queue_exists: Any,
) -> None:
    queue = names("cancelled")
    transport = connected()
    collector = Collector(transport, ack=True)
    with caplog.at_level(logging.INFO, "zocalo_transport_pika"):
        transport.subscribe(queue, collector)
        transport.send(queue, {"n": 1})
        collector.wait_for(1, 5)
        raw.channel().queue_delete(queue)
        assert wait_until(lambda: bool(cancellation_errors(caplog, queue)), 5)
        # The transport declares the queue again itself; the send must wait for
        # that, or it would declare the queue and hide what is tested.
        assert wait_until(lambda: queue_exists(queue), 5)
        transport.send(queue, {"n": 2})
        messages = collector.wait_for(2, 5)
    assert [m.body for m in messages] == [{"n": 1}, {"n": 2}]
    assert transport.state is ConnectionState.CONNECTED


@pytest.mark.broker
def test_check_only_resumes_when_the_queue_is_back(
    connected: Connect,
    names: Names,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    queue_exists: Any,
) -> None:
    queue = names("managed-cancelled")
    declare_managed(raw, queue)
    transport = connected(declare=False)
    collector = Collector(transport, ack=True)
    with caplog.at_level(logging.INFO, "zocalo_transport_pika"):
        transport.subscribe(queue, collector)
        raw.channel().queue_delete(queue)
        assert wait_until(lambda: bool(cancellation_errors(caplog, queue)), 5)
        time.sleep(1.0)
        assert not queue_exists(queue), "declare: false must not create it"
        declare_managed(raw, queue)
        # Published from outside, so nothing but the consumer can bring it in.
        raw.channel().basic_publish("", queue, b'{"back": true}')
        (message,) = collector.wait_for(1, 10)
    assert message.body == {"back": True}
    assert transport.state is ConnectionState.CONNECTED


@pytest.mark.broker
def test_a_queue_gone_past_the_bound_fails_the_transport(
    connected: Connect,
    names: Names,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    queue_exists: Any,
) -> None:
    queue = names("gone")
    declare_managed(raw, queue)
    transport = connected(declare=False, cancelled_consumer_timeout=2.0)
    collector = Collector(transport, ack=True)
    with caplog.at_level(logging.INFO, "zocalo_transport_pika"):
        transport.subscribe(queue, collector)
        deleted = time.monotonic()
        raw.channel().queue_delete(queue)
        assert wait_until(lambda: transport.state is ConnectionState.FAILED, 6)
    elapsed = time.monotonic() - deleted
    assert elapsed >= 1.9, f"failed after {elapsed:.2f} s, before the 2 s bound"
    assert cancellation_errors(caplog, queue)
    assert any("cancelled_consumer_timeout" in r.getMessage() for r in caplog.records)
    assert not queue_exists(queue)
