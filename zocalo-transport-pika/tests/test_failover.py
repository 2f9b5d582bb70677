"""Several hosts for failover: tried in the order given, the first that answers wins."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from zocalo_core import DisconnectedError
from zocalo_core.testing import Collector
from zocalo_transport_pika import PikaTransport

pytestmark = pytest.mark.broker

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]


def unused_port() -> int:
    """A loopback port that nobody listens on (bound, then closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Slammer:
    """Listens on 127.0.0.1 and closes every connection at once, counting them."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._listener.close()
        assert not self._thread.is_alive()


@pytest.fixture
def slammer() -> Iterator[Slammer]:
    started = Slammer()
    yield started
    started.stop()


def test_connects_to_the_second_host(connected: Connect, names: Names) -> None:
    dead = unused_port()
    transport = connected(
        host="127.0.0.1, 127.0.0.1", port=f"{dead}, 5672", connection_attempts=1
    )
    queue = names("failover")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    transport.send(queue, "through the second host")
    (message,) = collector.wait_for(1, 5)
    assert message.body == "through the second host"


def test_hosts_are_tried_in_order(connected: Connect, slammer: Slammer) -> None:
    connected(host=["127.0.0.1", "127.0.0.1"], port=[5672, slammer.port])
    assert slammer.accepted == 0
    connected(host=["127.0.0.1", "127.0.0.1"], port=[slammer.port, 5672])
    assert slammer.accepted == 1


def test_every_host_failing_names_each(transport_maker: Connect) -> None:
    first, second = unused_port(), unused_port()
    transport = transport_maker(
        host=["127.0.0.1", "127.0.0.1"],
        port=[first, second],
        connection_attempts=1,
    )
    with pytest.raises(DisconnectedError) as error:
        transport.connect()
    text = str(error.value)
    assert f"127.0.0.1:{first}: " in text
    assert f"127.0.0.1:{second}: " in text
    assert text.index(f":{first}: ") < text.index(f":{second}: ")
