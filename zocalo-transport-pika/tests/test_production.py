"""The RabbitMQ production cases of issue #5, on the real broker.

Connections the broker closes by force are found by their `connection_name`; no other
connection to the shared broker is touched. Every wait is bounded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from zocalo_core import DisconnectedError
from zocalo_core._service.base import Handling, Service, Subscribe
from zocalo_core.testing import Collector, ServiceThread, wait_until
from zocalo_core.transport import ConnectionState, Message, dead_letter_queue
from zocalo_transport_pika import PikaTransport

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]


def connection_name() -> str:
    return f"zocalo-pika-production-{uuid.uuid4().hex}"


@pytest.fixture
def drained(rabbitmq_tool: Callable[..., str]) -> Callable[[str], bool]:
    """`drained(queue)`: whether RabbitMQ counts no ready or unacknowledged message
    in `queue` within 10 s (its counts lag a little)."""

    def depth(queue: str) -> int:
        listing = rabbitmq_tool("rabbitmqctl", "-q", "list_queues", "name", "messages")
        for line in listing.splitlines():
            fields = line.split("\t")
            if fields[0] == queue:
                return int(fields[1])
        pytest.fail(f"queue {queue!r} not found: {listing!r}")

    return lambda queue: wait_until(lambda: depth(queue) == 0, 10.0)


def test_transaction_abort_sends_nothing_commit_sends_once(
    connected: Connect, names: Names
) -> None:
    """A send in an aborted transaction never arrives; a committed one arrives once."""
    transport = connected()
    queue, onward = names("txn-in"), names("txn-out")
    inputs, outputs = Collector(transport), Collector(transport, ack=True)
    transport.subscribe(queue, inputs)
    transport.subscribe(onward, outputs)
    transport.send(queue, "input")
    (message,) = inputs.wait_for(1, 5)
    aborted = transport.transaction_begin(message.subscription)
    transport.send(onward, "aborted", transaction=aborted)
    transport.transaction_abort(aborted)
    outputs.assert_quiet(0.5, 0)
    committed = transport.transaction_begin(message.subscription)
    transport.send(onward, "committed", transaction=committed)
    transport.ack(message, transaction=committed)
    transport.transaction_commit(committed)
    assert [m.body for m in outputs.wait_for(1, 5)] == ["committed"]
    outputs.assert_quiet(0.5)
    inputs.assert_quiet(0.3, 1)


def test_ack_in_transaction_then_plain_ack_not_redelivered(
    connected: Connect, names: Names, drained: Callable[[str], bool]
) -> None:
    """Prefetch 1: message 1 acked in a committed transaction, message 2 plainly;
    a new consumer gets neither again."""
    transport = connected()
    queue = names("txn-then-plain")
    collector = Collector(transport)
    transport.subscribe(queue, collector, prefetch=1)
    transport.send(queue, "one")
    transport.send(queue, "two")
    (first,) = collector.wait_for(1, 5)
    transaction = transport.transaction_begin(first.subscription)
    transport.ack(first, transaction=transaction)
    transport.transaction_commit(transaction)
    second = collector.wait_for(2, 5)[1]
    assert second.body == "two"
    transport.ack(second)
    transport.disconnect()
    restarted = connected()
    later = Collector(restarted, ack=True)
    restarted.subscribe(queue, later, prefetch=1)
    later.assert_quiet(1.0, 0)
    assert drained(queue)


_LOAD = 10_000


def _ack_worker(
    transport: PikaTransport,
    pending: list[Message],
    condition: threading.Condition,
    acked: list[str],
    errors: list[BaseException],
) -> None:
    deadline = time.monotonic() + 60
    while len(acked) < _LOAD and time.monotonic() < deadline:
        with condition:
            if not pending:
                condition.wait(0.1)
                continue
            batch = list(pending)
            pending.clear()
        for message in batch:
            try:
                transport.ack(message)
            except BaseException as exc:
                errors.append(exc)
                return
            acked.append(message.message_id)


def _send_load(
    transport: PikaTransport, queue: str, errors: list[BaseException]
) -> None:
    try:
        for number in range(_LOAD):
            transport.send(queue, number)
    except BaseException as exc:
        errors.append(exc)


def test_load_then_forced_close(
    connected: Connect,
    names: Names,
    caplog: pytest.LogCaptureFixture,
    broker_closes: Callable[[str], None],
    drained: Callable[[str], bool],
) -> None:
    """10,000 sends and 10,000 acks on two threads at once, then the broker closes
    the connection: no protocol error, each message acked once, and the next call
    raises DisconnectedError within a second."""
    name = connection_name()
    transport = connected(connection_name=name, reconnect_attempts=0)
    queue = names("load")
    pending: list[Message] = []
    condition = threading.Condition()
    acked: list[str] = []
    bodies: list[int] = []
    errors: list[BaseException] = []

    def collect(message: Message) -> None:
        with condition:
            pending.append(message)
            bodies.append(message.body)
            condition.notify()

    transport.subscribe(queue, collect, prefetch=200)
    threads = [
        threading.Thread(target=_send_load, args=(transport, queue, errors)),
        threading.Thread(
            target=_ack_worker,
            args=(transport, pending, condition, acked, errors),
        ),
    ]
    with caplog.at_level(logging.WARNING):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(70)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert sorted(bodies) == list(range(_LOAD))
        assert len(set(acked)) == len(acked) == _LOAD
        assert drained(queue)
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert problems == []
        broker_closes(name)
        closed_at = time.monotonic()
        assert wait_until(lambda: transport.state is ConnectionState.FAILED, 1.0)
        with pytest.raises(DisconnectedError):
            transport.send(queue, "after the close")
        assert time.monotonic() - closed_at < 1.0
    later = Collector()
    connected().subscribe(queue, later)
    later.assert_quiet(0.5, 0)


def test_handler_sleeping_three_heartbeats(
    connected: Connect,
    names: Names,
    caplog: pytest.LogCaptureFixture,
    drained: Callable[[str], bool],
) -> None:
    """A handler asleep for three heartbeat intervals, then acking: the connection
    stays up all along and the message is not delivered again."""
    transport = connected(heartbeat=1)
    queue = names("sleepy")
    states: set[ConnectionState] = set()
    seen: list[Message] = []
    done = threading.Event()

    def sleepy(message: Message) -> None:
        seen.append(message)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            states.add(transport.state)
            time.sleep(0.05)
        transport.ack(message)
        done.set()

    with caplog.at_level(logging.WARNING):
        transport.subscribe(queue, sleepy)
        transport.send(queue, "slow")
        assert done.wait(10)
        time.sleep(1.0)
    assert states == {ConnectionState.CONNECTED}
    assert transport.is_connected()
    assert [(m.body, m.delivery_attempt) for m in seen] == [("slow", 1)]
    assert not any("lost" in r.getMessage() for r in caplog.records)
    assert drained(queue)


def test_broker_has_no_delayed_message_plugin(
    rabbitmq_tool: Callable[..., str],
) -> None:
    """The delay cases below run on a broker without the delayed-message plugin."""
    listing = rabbitmq_tool("rabbitmq-plugins", "list", "-e")
    assert "rabbitmq_delayed_message_exchange" not in listing


@pytest.mark.parametrize("delay", [1.5, 0.25])
def test_delayed_send_never_early(
    connected: Connect, names: Names, delay: float
) -> None:
    """A delayed message arrives after its delay, not before, and not much later."""
    transport = connected()
    queue = names("delayed")
    arrivals: list[float] = []
    collector = Collector(
        transport, ack=True, react=lambda m: arrivals.append(time.monotonic())
    )
    transport.subscribe(queue, collector)
    sent_at = time.monotonic()
    transport.send(queue, "later", delay=delay)
    (message,) = collector.wait_for(1, delay + 5)
    assert message.body == "later"
    assert delay <= arrivals[0] - sent_at < delay + 3


class _Failing(Service):
    """Records each body; fails on "poison"."""

    handled: ClassVar[list[Any]] = []

    def handle(self, message: Message) -> None:
        if message.body == "poison":
            raise RuntimeError("cannot handle this one")
        self.handled.append(message.body)


class _Recording(Service):
    """Records each body, slowly enough that a backlog takes a moment."""

    handled: ClassVar[list[Any]] = []

    def handle(self, message: Message) -> None:
        time.sleep(0.02)
        self.handled.append(message.body)


def _service_class(
    base: type[Service], queue: str, handling: Handling = Handling.TRANSACTION
) -> type[Service]:
    attributes = {
        "subscriptions": (Subscribe(queue, "handle", recipe=False, handling=handling),),
        "handled": [],
    }
    return type(f"{base.__name__}Service", (base,), attributes)


Services = Callable[[type[Service], PikaTransport], ServiceThread]


@pytest.fixture
def services() -> Iterator[Services]:
    """`start(service_class, transport)`: a running ServiceThread, stopped after."""
    started: list[ServiceThread] = []

    def start(service_class: type[Service], transport: PikaTransport) -> ServiceThread:
        running = ServiceThread(service_class, transport, status_interval=60.0)
        started.append(running.start())
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop(15)


def test_service_dead_letters_a_failing_message_and_goes_on(
    connected: Connect,
    names: Names,
    transport_maker: Callable[..., PikaTransport],
    services: Services,
    request: pytest.FixtureRequest,
    broker_cleanup: Callable[[list[str]], None],
) -> None:
    """A handler that raises: after the delivery limit the message is in
    dlq.<queue>, and the service handles the next message."""
    queue = names("failing")
    # Consuming dlq.<queue> declares dlq.dlq.<queue> too.
    request.addfinalizer(lambda: broker_cleanup([dead_letter_queue(queue)]))
    service_class = _service_class(_Failing, queue)
    watcher = connected()
    dead = Collector(watcher, ack=True)
    watcher.subscribe(dead_letter_queue(queue), dead)
    watcher.send(queue, "poison")
    watcher.send(queue, "fine")
    running = services(service_class, transport_maker(delivery_limit=3))
    (letter,) = dead.wait_for(1, 15)
    assert letter.body == "poison"
    deaths: Any = letter.headers["x-zocalo-deaths"]
    assert [death["attempts"] for death in deaths] == [3]
    assert wait_until(lambda: service_class.handled == ["fine"], 10)  # type: ignore[attr-defined]
    assert running.stop(15) == 0


_CHILD = """
import sys, time
from zocalo_transport_pika import PikaTransport

transport = PikaTransport(
    host="127.0.0.1", port=5672, username="guest", password="guest", vhost="/"
)
transport.connect()

def slow(message):
    print("got", message.body, flush=True)
    time.sleep(0.4)
    transport.ack(message)
    print("acked", message.body, flush=True)

transport.subscribe(sys.argv[1], slow, prefetch=1)
print("ready", flush=True)
time.sleep(60)
"""


class ChildConsumer:
    """A consumer in a subprocess; its output lines are read on a thread."""

    def __init__(self, queue: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, queue],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def bodies(self, verb: str) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith(verb)]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


def test_killed_consumer_requeues_at_most_one(
    connected: Connect, names: Names, drained: Callable[[str], bool]
) -> None:
    """Two prefetch-1 consumers share ten slow messages; SIGKILL of one of them
    returns at most its one unacknowledged message, and all ten are handled."""
    queue = names("shared")
    transport = connected()
    local: list[Message] = []

    def slow(message: Message) -> None:
        time.sleep(0.4)
        transport.ack(message)
        local.append(message)

    child = ChildConsumer(queue)
    try:
        assert wait_until(lambda: "ready" in child.lines, 20)
        transport.subscribe(queue, slow, prefetch=1)
        for number in range(10):
            transport.send(queue, number)
        assert wait_until(lambda: len(child.bodies("acked")) >= 1, 10)
        assert wait_until(lambda: len(child.bodies("got")) >= 2, 10)
    finally:
        child.kill()
    got, acked = child.bodies("got"), child.bodies("acked")
    assert wait_until(lambda: len(local) + len(acked) >= 10, 15)
    time.sleep(0.5)
    redelivered = [m.body for m in local if m.redelivered]
    assert len(redelivered) <= 1
    assert sorted(redelivered) == sorted(set(got) - set(acked))
    assert sorted([m.body for m in local] + acked) == list(range(10))
    assert drained(queue)


def test_service_survives_forced_close_during_backlog(
    names: Names,
    transport_maker: Callable[..., PikaTransport],
    connected: Connect,
    services: Services,
    broker_closes: Callable[[str], None],
    drained: Callable[[str], bool],
) -> None:
    """The broker closes a service's connection in the middle of a backlog: the
    transport reconnects and every message is handled."""
    queue = names("backlog")
    # The default handling: each message is acked and forwarded in one transaction,
    # and the commit of one delivered before the loss must not end the service.
    service_class = _service_class(_Recording, queue)
    handled: list[Any] = service_class.handled  # type: ignore[attr-defined]
    sender = connected()
    for number in range(300):
        sender.send(queue, number)
    name = connection_name()
    transport = transport_maker(connection_name=name)
    running = services(service_class, transport)
    assert wait_until(lambda: len(handled) >= 50, 15)
    broker_closes(name)
    handled_before_the_close = len(handled)
    assert wait_until(lambda: set(handled) == set(range(300)), 30)
    assert handled_before_the_close < 250
    assert wait_until(transport.is_connected, 10)
    assert running.thread.is_alive()
    assert running.stop(15) == 0
    assert drained(queue)


def test_ack_cut_off_by_the_loss_is_dropped_not_raised(
    connected: Connect,
    names: Names,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broker_closes: Callable[[str], None],
) -> None:
    """An ack already past the wait for a restored connection when the connection
    goes: dropped with a WARNING (RabbitMQ delivers the message again), not a
    DisconnectedError that would make a service give up a connection coming back."""
    name = connection_name()
    transport = connected(connection_name=name)
    queue = names("cut-off")
    collector = Collector(transport)
    transport.subscribe(queue, collector)
    transport.send(queue, "held")
    (held,) = collector.wait_for(1, 5)
    broker_closes(name)
    assert wait_until(lambda: transport._keeper._session is None, 2.0)
    # The race: the ack saw the connection up just before it went.
    monkeypatch.setattr(transport._keeper._restored, "is_set", lambda: True)
    with caplog.at_level(logging.WARNING):
        transport.ack(held)
    monkeypatch.undo()
    assert any("Dropped the ack" in r.getMessage() for r in caplog.records)
    assert wait_until(transport.is_connected, 10.0)
    again = collector.wait_for(2, 5)[1]
    assert (again.body, again.delivery_attempt) == ("held", 2)
    transport.ack(again)


def test_a_service_exits_with_the_disconnection_code_when_reconnecting_gives_up(
    names: Names,
    transport_maker: Callable[..., PikaTransport],
    services: Services,
    broker_closes: Callable[[str], None],
) -> None:
    """With reconnection off (or given up), a lost connection ends the service with
    the disconnection exit code, even when no message is coming."""
    from zocalo_core._service.runner import EXIT_DISCONNECTED

    queue = names("gives-up")
    service_class = _service_class(_Recording, queue)
    name = connection_name()
    transport = transport_maker(connection_name=name, reconnect_attempts=0)
    running = services(service_class, transport)
    assert wait_until(transport.is_connected, 10)
    time.sleep(0.3)

    broker_closes(name)

    running.thread.join(5)
    assert not running.thread.is_alive()
    assert running.exit_code == EXIT_DISCONNECTED
