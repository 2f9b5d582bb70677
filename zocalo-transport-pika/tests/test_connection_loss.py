"""A connection closed under the transport: reported, then restored or given up.

The broker closes the test's own connection (found by its connection name) with
`rabbitmqctl close_connection`; other connections to the shared broker are untouched.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from zocalo_core import DisconnectedError, TransportError
from zocalo_core.testing import Collector, wait_until
from zocalo_core.transport import ConnectionState
from zocalo_transport_pika import PikaTransport
from zocalo_transport_pika._loop import Chain
from zocalo_transport_pika._session import Session

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]


class WaitingCall:
    """A call that waits for the broker until the connection ends, on a thread."""

    def __init__(self, transport: PikaTransport) -> None:
        self.error: BaseException | None = None
        self.ended_at = 0.0

        def never_answered(session: Session) -> Chain[None]:
            yield lambda on_done, on_error: None

        def wait() -> None:
            try:
                transport._keeper.call(never_answered, "wait for nothing")
            except BaseException as exc:
                self.error = exc
            self.ended_at = time.monotonic()

        self.thread = threading.Thread(target=wait)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(15)
        assert not self.thread.is_alive()


def name() -> str:
    return f"zocalo-pika-test-{uuid.uuid4().hex}"


def test_lost_connection_without_reconnect_fails(
    connected: Connect,
    names: Names,
    caplog: pytest.LogCaptureFixture,
    broker_closes: Callable[[str], None],
) -> None:
    """reconnect_attempts=0: FAILED at once; waiting and later calls are refused."""
    connection_name = name()
    transport = connected(connection_name=connection_name, reconnect_attempts=0)
    subscription = transport.subscribe(names("lost"), Collector())
    waiting = WaitingCall(transport)
    with caplog.at_level(logging.WARNING):
        broker_closes(connection_name)
        closed_at = time.monotonic()
        waiting.join()
    assert isinstance(waiting.error, DisconnectedError)
    assert waiting.ended_at - closed_at < 1.0
    assert wait_until(lambda: transport.state is ConnectionState.FAILED, 1.0)
    assert not subscription.active
    with pytest.raises(DisconnectedError):
        transport.send(names("lost"), "x")
    assert any("was lost" in r.getMessage() for r in caplog.records)
    transport.connect()
    assert transport.is_connected()


def test_lost_connection_is_restored(
    connected: Connect,
    names: Names,
    caplog: pytest.LogCaptureFixture,
    broker_closes: Callable[[str], None],
) -> None:
    """RECONNECTING, then CONNECTED with the subscription back; old acks dropped."""
    connection_name = name()
    transport = connected(connection_name=connection_name)
    queue = names("restored")
    collector = Collector()
    subscription = transport.subscribe(queue, collector)
    transport.send(queue, "held across the loss")
    (held,) = collector.wait_for(1, 5)
    waiting = WaitingCall(transport)
    states: list[ConnectionState] = []
    with caplog.at_level(logging.WARNING):
        broker_closes(connection_name)
        closed_at = time.monotonic()
        waiting.join()
        assert wait_until(lambda: transport.state is not ConnectionState.CONNECTED, 1.0)
        states.append(transport.state)
        assert wait_until(transport.is_connected, 10.0)
        transport.ack(held)
    assert isinstance(waiting.error, DisconnectedError)
    assert waiting.ended_at - closed_at < 1.0
    assert states == [ConnectionState.RECONNECTING]
    assert subscription.active
    assert any("Dropped the ack" in r.getMessage() for r in caplog.records)
    again = collector.wait_for(2, 5)[1]
    assert (again.body, again.redelivered, again.delivery_attempt) == (
        "held across the loss",
        True,
        2,
    )
    transport.ack(again)
    transport.send(queue, "after the loss")
    assert collector.wait_for(3, 5)[2].body == "after the loss"
    transport.ack(collector.messages[2])
    collector.assert_quiet(0.3)


def test_settings_reach_pika(
    connected: Connect, rabbitmq_tool: Callable[..., str]
) -> None:
    """The connection name and heartbeat given are those RabbitMQ sees."""
    connection_name = name()
    transport = connected(connection_name=connection_name, heartbeat=7)
    listing = rabbitmq_tool(
        "rabbitmqctl", "-q", "list_connections", "client_properties", "timeout"
    )
    lines = [line for line in listing.splitlines() if connection_name in line]
    assert len(lines) == 1
    assert lines[0].rstrip().endswith("\t7")
    assert transport.is_connected()


def test_no_broker_at_the_address_is_a_clear_error() -> None:
    """A server that is not RabbitMQ: DisconnectedError naming it, boundedly."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port = server.getsockname()[1]
        stop = threading.Event()

        def refuse() -> None:
            while not stop.is_set():
                try:
                    accepted, _ = server.accept()
                except OSError:
                    continue
                accepted.close()

        thread = threading.Thread(target=refuse)
        thread.start()
        try:
            transport = PikaTransport(
                host="127.0.0.1",
                port=port,
                password="not-in-errors",
                connection_attempts=2,
                retry_delay=0.1,
            )
            started = time.monotonic()
            with pytest.raises(DisconnectedError, match=f"127.0.0.1:{port}") as error:
                transport.connect()
            assert time.monotonic() - started < 10
        finally:
            stop.set()
            thread.join(5)
    assert "not-in-errors" not in str(error.value)
    assert transport.state is ConnectionState.DISCONNECTED


def test_transactions_across_a_restored_connection(
    connected: Connect, names: Names, broker_closes: Callable[[str], None]
) -> None:
    """Work of a transaction never reaches RabbitMQ before commit, so across a loss
    a send-only transaction still commits, and one settling an old delivery fails
    as a whole."""
    connection_name = name()
    transport = connected(connection_name=connection_name)
    queue, onward = names("txn-loss"), names("txn-loss-out")
    collector, outputs = Collector(), Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    transport.subscribe(onward, outputs)
    transport.send(queue, "input")
    (held,) = collector.wait_for(1, 5)
    bound = transport.transaction_begin(held.subscription)
    transport.send(onward, "from the failed transaction", transaction=bound)
    transport.ack(held, transaction=bound)
    send_only = transport.transaction_begin()
    transport.send(onward, "from the send-only transaction", transaction=send_only)
    broker_closes(connection_name)
    assert wait_until(lambda: transport.state is not ConnectionState.CONNECTED, 1.0)
    assert wait_until(transport.is_connected, 10.0)
    with pytest.raises(TransportError, match="nothing of the transaction was done"):
        transport.transaction_commit(bound)
    transport.transaction_commit(send_only)
    assert [m.body for m in outputs.wait_for(1, 5)] == [
        "from the send-only transaction"
    ]
    outputs.assert_quiet(0.3)
    again = collector.wait_for(2, 5)[1]
    assert again.delivery_attempt == 2
    transport.ack(again)
