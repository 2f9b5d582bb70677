"""TLS to RabbitMQ, through a TLS-terminating proxy on loopback that the test starts.

The broker on 127.0.0.1:5672 speaks plain AMQP, so each test puts a small proxy in
front of it: it accepts TLS on a free loopback port with a throwaway certificate for
`localhost`/127.0.0.1, signed by a throwaway CA, and forwards the bytes to 5672.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from zocalo_core import ConfigurationError, DisconnectedError
from zocalo_core.testing import Collector
from zocalo_transport_pika import PikaSettings, PikaTransport

Names = Callable[[str], str]
Connect = Callable[..., PikaTransport]

OPENSSL = "/usr/bin/openssl"
UPSTREAM = ("127.0.0.1", 5672)
WAIT = 0.2  # every blocking call of the proxy returns this often to see the stop


def _openssl(*arguments: str, cwd: Path) -> None:
    subprocess.run(
        [OPENSSL, *arguments], cwd=cwd, check=True, capture_output=True, timeout=30
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ca.pem, server.pem and server.key (for localhost, 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("tls")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Zocalo test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", *curve, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=folder,
    )  # fmt: skip
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2",
        "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    return folder


class TlsProxy:
    """Accepts TLS on 127.0.0.1:`port` and forwards each connection to RabbitMQ."""

    def __init__(self, certificates: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(
            certificates / "server.pem", certificates / "server.key"
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.handshakes_failed = 0
        self._start(self._accept_loop)

    def _start(self, target: Callable[..., None], *arguments: object) -> None:
        thread = threading.Thread(target=target, args=arguments, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._start(self._forward, client)

    def _forward(self, client: socket.socket) -> None:
        client.settimeout(5.0)
        try:
            secure = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            self.handshakes_failed += 1
            client.close()
            return
        with secure, socket.create_connection(UPSTREAM, timeout=5.0) as upstream:
            secure.settimeout(WAIT)
            upstream.settimeout(WAIT)
            while not self._stop.is_set() and self._pump(secure, upstream):
                pass

    def _pump(self, secure: ssl.SSLSocket, upstream: socket.socket) -> bool:
        """Move what is waiting either way; False once either side has closed."""
        readable = [secure] if secure.pending() else []
        if not readable:
            readable, _, _ = select.select([secure, upstream], [], [], WAIT)
        try:
            for source in readable:
                target = upstream if source is secure else secure
                data = source.recv(65536)
                if not data:
                    return False
                target.sendall(data)
        except (TimeoutError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5.0)
        assert not any(thread.is_alive() for thread in self._threads)


@pytest.fixture
def proxy(certificates: Path) -> Iterator[TlsProxy]:
    started = TlsProxy(certificates)
    yield started
    started.stop()


def tls_options(proxy: TlsProxy, **options: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": proxy.port,
        "tls": True,
        "connection_attempts": 1,
        **options,
    }


@pytest.mark.broker
def test_round_trip_over_tls(
    connected: Connect, names: Names, proxy: TlsProxy, certificates: Path
) -> None:
    transport = connected(
        **tls_options(proxy, ca_certificate=str(certificates / "ca.pem"))
    )
    queue = names("tls")
    collector = Collector(transport, ack=True)
    transport.subscribe(queue, collector)
    transport.send(queue, {"over": "tls"})
    (message,) = collector.wait_for(1, 5)
    assert message.body == {"over": "tls"}


@pytest.mark.broker
def test_certificate_checked_by_default(
    transport_maker: Connect, proxy: TlsProxy
) -> None:
    """Without the CA the certificate is not trusted: the connection is refused."""
    transport = transport_maker(**tls_options(proxy))
    with pytest.raises(DisconnectedError, match="certificate check failed") as error:
        transport.connect()
    assert "ca_certificate" in str(error.value)
    # The proxy sees the refusal a moment after the client gives up.
    deadline = time.monotonic() + 5.0
    while proxy.handshakes_failed == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.handshakes_failed == 1


@pytest.mark.broker
def test_server_name_must_match(
    transport_maker: Connect, proxy: TlsProxy, certificates: Path
) -> None:
    transport = transport_maker(
        **tls_options(
            proxy,
            ca_certificate=str(certificates / "ca.pem"),
            server_name="rabbitmq.example.org",
        )
    )
    with pytest.raises(DisconnectedError, match="certificate check failed") as error:
        transport.connect()
    assert "rabbitmq.example.org" in str(error.value)


@pytest.mark.broker
def test_verify_off_connects_with_a_warning(
    connected: Connect, proxy: TlsProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "zocalo_transport_pika"):
        transport = connected(**tls_options(proxy, verify=False))
    assert transport.is_connected()
    assert any(
        record.levelno == logging.WARNING and "verify: false" in record.getMessage()
        for record in caplog.records
    )


def test_unreadable_ca_is_a_configuration_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.pem")
    transport = PikaTransport(
        host="127.0.0.1", port=1, tls=True, ca_certificate=missing
    )
    with pytest.raises(DisconnectedError, match="ca_certificate") as error:
        transport.connect()
    assert isinstance(error.value.__cause__, ConfigurationError)
    assert missing in str(error.value)


def test_tls_settings() -> None:
    settings = PikaSettings.from_mapping({"host": "rmq", "tls": True}, "test")
    assert settings.endpoints == (("rmq", 5671),)
    assert settings.verify is True
    plain = PikaSettings.from_mapping({"host": "rmq"}, "test")
    assert plain.endpoints == (("rmq", 5672),)
    assert plain.tls is False


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"ca_certificate": "ca.pem"}, "only apply with `tls: true`"),
        ({"tls": "yes"}, "`tls` must be true or false"),
        ({"tls": True, "verify": 0}, "`verify` must be true or false"),
        ({"tls": True, "client_key": "k.pem"}, "without `client_certificate`"),
    ],
)
def test_bad_tls_settings(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        PikaSettings.from_mapping(values, "test")
