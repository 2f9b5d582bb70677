"""`ConnectionKeeper`: opens the connection, notices its loss and restores it.

Everything that runs on the I/O thread is marked so. A lost connection turns the
transport `RECONNECTING`: every call waiting for the broker raises
`DisconnectedError` at once, the keeper reconnects with growing pauses and
subscribes every subscription again, and new calls wait (boundedly) meanwhile.
Deliveries of the old connection are not settled on the new one: their channels
are gone, and RabbitMQ delivers them again. When the attempts run out, the
transport becomes `FAILED`.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorPhaseErrorBase,
)
from zocalo_core import ConfigurationError, DisconnectedError, ZocaloError
from zocalo_core.transport import ConnectionState

from zocalo_transport_pika._channel import ChannelHandle, guarded
from zocalo_transport_pika._loop import (
    Chain,
    IoThread,
    OnDone,
    OnError,
    Step,
    describe,
    run_chain,
)
from zocalo_transport_pika._session import Session
from zocalo_transport_pika._settings import PikaSettings

if TYPE_CHECKING:
    from zocalo_transport_pika._transport import PikaTransport

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_RECONNECT_DELAY = 0.25


class ConnectionKeeper:
    """The connection of one `PikaTransport`, from connect() to disconnect()."""

    def __init__(self, transport: PikaTransport) -> None:
        self._transport = transport
        self._settings = transport.settings
        self._io: IoThread | None = None
        self._parameters: list[Any] = []
        self._session: Session | None = None
        self._closing = False
        self._close_waiters: list[OnDone] = []
        self._restored = threading.Event()
        self._reconnect_timer: Any = None

    # -- from the caller's threads

    def open(self) -> None:
        self._parameters = connection_parameters(self._settings)
        self._closing = False
        self._restored.set()
        io = IoThread(f"zocalo pika I/O {self._settings.describe_endpoints()}")
        io.start()
        self._io = io
        settings = self._settings
        rounds = settings.connection_attempts
        per_try = 2 * settings.socket_timeout + 10.0
        timeout = (
            rounds * len(self._parameters) * per_try + rounds * settings.retry_delay
        )
        try:
            io.call(lambda: self._connect_chain(rounds), "connect to RabbitMQ", timeout)
        except BaseException:
            io.stop()
            self._io = None
            raise

    def close(self) -> None:
        io = self._io
        if io is None:
            return
        try:
            io.call(
                self._close_chain, "close the connection", self._settings.call_timeout
            )
        except DisconnectedError:
            logger.debug("The connection was closed already", exc_info=True)
        except ZocaloError as exc:
            logger.warning(
                "Could not close the connection to RabbitMQ cleanly: %s", exc
            )
        finally:
            io.stop()
            self._io = None
            self._session = None

    def call(
        self, make_chain: Callable[[Session], Chain[T]], what: str | Callable[[], str]
    ) -> T:
        """Run `make_chain(session)` on the I/O thread, waiting for a reconnection.

        `what` (or what it returns, when it is a function) names the call in errors.
        """
        io = self._io
        if io is None:
            raise DisconnectedError(
                f"could not {describe(what)}: the transport is not connected"
            )
        timeout = self._settings.call_timeout
        if not self._restored.is_set() and not self._restored.wait(timeout):
            problem = (
                f"could not {describe(what)}: the connection to RabbitMQ is lost "
                f"and was not restored within {timeout:g} s"
            )
            raise DisconnectedError(problem)

        def chain() -> Chain[T]:
            session = self._session
            if session is None:
                raise DisconnectedError(
                    f"could not {describe(what)}: the connection to RabbitMQ was lost"
                )
            return make_chain(session)

        return io.call(chain, what, timeout)

    def submit(self, function: Callable[[], None]) -> bool:
        """Run `function()` soon on the I/O thread; False if there is none."""
        io = self._io
        return io is not None and io.submit(function)

    def defer(
        self, function: Callable[[], None], on_dropped: Callable[[], None]
    ) -> bool:
        """Hand `function()` to the I/O thread without waking it (`IoThread.defer`);
        False if there is none."""
        io = self._io
        return io is not None and io.defer(function, on_dropped)

    def flush(self) -> None:
        """Wake the I/O thread for what was deferred, if anything was."""
        io = self._io
        if io is not None:
            io.flush()

    # -- on the I/O thread: opening and closing

    def _connect_chain(self, rounds: int) -> Chain[None]:
        connection = yield from self._open_chain(rounds)
        self._session = Session(connection, self._settings)

    def _open_chain(self, rounds: int) -> Chain[Any]:
        failures: list[str] = []
        for round_number in range(rounds):
            for parameters in self._parameters:
                try:
                    return (yield self._open_step(parameters))
                except Exception as exc:
                    where = f"{parameters.host}:{parameters.port}"
                    failures.append(f"{where}: {_describe(exc)}")
            if round_number + 1 < rounds:
                yield self._sleep_step(self._settings.retry_delay)
        settings = self._settings
        problem = (
            f"could not connect to RabbitMQ at {settings.describe_endpoints()} as "
            f"{settings.username!r} on vhost {settings.vhost!r}: {'; '.join(failures)}"
        )
        raise DisconnectedError(problem)

    def _open_step(self, parameters: Any) -> Step:
        assert self._io is not None
        ioloop = self._io.ioloop

        def step(on_done: OnDone, on_error: OnError) -> None:
            SelectConnection(
                parameters=parameters,
                on_open_callback=guarded(on_done),
                on_open_error_callback=guarded(lambda _, exc: on_error(exc)),
                on_close_callback=guarded(self._on_connection_closed),
                custom_ioloop=ioloop,
            )

        return step

    def _sleep_step(self, seconds: float) -> Step:
        assert self._io is not None
        ioloop = self._io.ioloop

        def step(on_done: OnDone, on_error: OnError) -> None:
            ioloop.call_later(seconds, guarded(lambda: on_done(None)))

        return step

    def _close_chain(self) -> Chain[None]:
        self._closing = True
        self._restored.set()
        if self._reconnect_timer is not None and self._io is not None:
            self._io.ioloop.remove_timeout(self._reconnect_timer)
        session = self._session
        if session is None:
            return
        connection = session.connection

        def step(on_done: OnDone, on_error: OnError) -> None:
            if connection.is_closed:
                on_done(None)
                return
            self._close_waiters.append(on_done)
            if not connection.is_closing:
                connection.close()

        yield step

    def _on_connection_closed(self, connection: Any, reason: BaseException) -> None:
        session = self._session
        if session is not None and session.connection is connection:
            self._session = None
            if not self._closing:
                self._lost(reason)
        waiting, self._close_waiters = self._close_waiters, []
        for on_done in waiting:
            on_done(None)

    # -- on the I/O thread: losing and restoring

    def _lost(self, reason: BaseException) -> None:
        logger.warning("The connection to RabbitMQ was lost: %s", _describe(reason))
        if self._io is not None:
            self._io.fail_outstanding(
                DisconnectedError(
                    f"the connection to RabbitMQ was lost ({_describe(reason)}); the "
                    "call may or may not have taken effect"
                )
            )
        if self._settings.reconnect_attempts == 0:
            self._fail(reason)
            return
        if self._transport.state is ConnectionState.RECONNECTING:
            return  # a restore is under way; its failure schedules the next try
        self._restored.clear()
        self._transport._set_state(ConnectionState.RECONNECTING)
        self._schedule_reconnect(1)

    def _schedule_reconnect(self, attempt: int) -> None:
        assert self._io is not None
        delay = min(
            self._settings.reconnect_max_delay,
            _FIRST_RECONNECT_DELAY * 2 ** (attempt - 1),
        )
        logger.info("Reconnecting to RabbitMQ in %.2f s (attempt %d)", delay, attempt)
        self._reconnect_timer = self._io.ioloop.call_later(
            delay, guarded(lambda: self._reconnect(attempt))
        )

    def _reconnect(self, attempt: int) -> None:
        self._reconnect_timer = None
        if self._closing:
            return
        run_chain(
            self._restore_chain(),
            lambda _: self._restored_ok(),
            lambda exc: self._reconnect_failed(attempt, exc),
        )

    def _restore_chain(self) -> Chain[None]:
        connection = yield from self._open_chain(1)
        if self._closing:
            connection.close()
            return
        session = Session(connection, self._settings)
        self._session = session
        for consumer in self._transport._active_consumers():
            try:
                yield from consumer.start_chain(session)
            except Exception as exc:
                if self._session is not session:
                    raise
                logger.error(
                    "Could not subscribe %r again after reconnecting: %s",
                    consumer.subscription,
                    _describe(exc),
                )

    def _restored_ok(self) -> None:
        if self._closing:
            return
        self._transport._set_state(ConnectionState.CONNECTED)
        self._restored.set()
        logger.info("Restored the connection to RabbitMQ and its subscriptions")

    def _reconnect_failed(self, attempt: int, exc: BaseException) -> None:
        if self._closing:
            return
        logger.warning(
            "Reconnect attempt %d of %d failed: %s",
            attempt,
            self._settings.reconnect_attempts,
            _describe(exc),
        )
        if attempt >= self._settings.reconnect_attempts:
            self._fail(exc)
        else:
            self._schedule_reconnect(attempt + 1)

    def _fail(self, reason: BaseException) -> None:
        """Give up: the transport becomes FAILED and the I/O thread ends."""
        self._closing = True
        self._transport._give_up(reason)
        self._restored.set()
        io, self._io = self._io, None
        if io is not None:
            io.fail_outstanding(
                DisconnectedError(f"the connection to RabbitMQ failed: {reason}")
            )
            io.ioloop.stop()

    def current_session(self) -> Session | None:
        """The session of the open connection; None while there is none."""
        return None if self._closing else self._session

    def call_later(self, seconds: float, function: Callable[[], None]) -> None:
        """On the I/O thread: run `function` there after `seconds`."""
        if self._io is not None:
            self._io.ioloop.call_later(seconds, guarded(function))

    def fail_from_io(self, reason: BaseException) -> None:
        """On the I/O thread: close the connection, then make the transport FAILED.

        For a fault the connection itself does not show (a subscription that cannot
        be restored): a `zocalo service` notices FAILED and exits.
        """
        if self._closing:
            return
        run_chain(
            self._close_chain(),
            lambda _: self._fail(reason),
            lambda _: self._fail(reason),
        )

    def consumer_channel_closed(
        self, handle: ChannelHandle, reason: BaseException
    ) -> None:
        """A subscription's channel closed: start it again if RabbitMQ closed it."""
        if not isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            return
        session = self._session
        consumer = next(
            (c for c in self._transport._active_consumers() if c.handle is handle),
            None,
        )
        if consumer is None or session is None or self._closing:
            return
        if not consumer.may_restart():
            logger.error(
                "RabbitMQ keeps closing the channel of %r (%s); it is not restarted "
                "again: subscribe again once the cause is fixed",
                consumer.subscription,
                _describe(reason),
            )
            return
        logger.warning(
            "RabbitMQ closed the channel of %r (%s); subscribing again",
            consumer.subscription,
            _describe(reason),
        )
        run_chain(
            consumer.start_chain(session),
            lambda _: None,
            lambda exc: logger.error(
                "Could not subscribe %r again: %s",
                consumer.subscription,
                _describe(exc),
            ),
        )


def _describe(exc: BaseException) -> str:
    exc = _innermost(exc)
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return f"{exc.reply_code} {exc.reply_text}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate check failed ({exc.verify_message}): give the CA that "
            "signed the broker's certificate as `ca_certificate`, and as "
            "`server_name` the name in that certificate if it is not the host"
        )
    text = str(exc) or type(exc).__name__
    return (
        text if isinstance(exc, DisconnectedError) else f"{type(exc).__name__}: {text}"
    )


def _innermost(exc: BaseException) -> BaseException:
    """The error under pika's wrappers of a failed connection attempt."""
    while True:
        if isinstance(exc, AMQPConnectionWorkflowFailed) and exc.exceptions:
            exc = exc.exceptions[-1]
        elif isinstance(exc, AMQPConnectorPhaseErrorBase):
            exc = exc.exception
        else:
            return exc


def connection_parameters(settings: PikaSettings) -> list[pika.ConnectionParameters]:
    """One `pika.ConnectionParameters` per endpoint, in the order to try them."""
    credentials = pika.PlainCredentials(settings.username, settings.password)
    context = tls_context(settings) if settings.tls else None
    return [
        pika.ConnectionParameters(
            host=host,
            port=port,
            virtual_host=settings.vhost,
            credentials=credentials,
            heartbeat=settings.heartbeat,
            connection_attempts=1,
            socket_timeout=settings.socket_timeout,
            stack_timeout=settings.socket_timeout + 5.0,
            client_properties={"connection_name": settings.connection_name},
            ssl_options=(
                None
                if context is None
                else pika.SSLOptions(context, settings.server_name or host)
            ),
        )
        for host, port in settings.endpoints
    ]


def tls_context(settings: PikaSettings) -> ssl.SSLContext:
    """The client TLS context; it checks the broker's certificate unless told not to."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_certificate)
        if settings.client_certificate is not None:
            context.load_cert_chain(settings.client_certificate, settings.client_key)
    except (OSError, ssl.SSLError) as exc:
        files = {
            "ca_certificate": settings.ca_certificate,
            "client_certificate": settings.client_certificate,
            "client_key": settings.client_key,
        }
        given = ", ".join(f"`{k}` {v!r}" for k, v in files.items() if v is not None)
        problem = (
            f"could not set up TLS for RabbitMQ from {given or 'the system CAs'}: "
            f"{exc}; check that those files exist, are readable and hold PEM "
            "certificates and keys"
        )
        raise ConfigurationError(problem) from exc
    if not settings.verify:
        logger.warning(
            "TLS certificate checks are off (`verify: false`) for RabbitMQ at %s: "
            "anyone between here and the broker can read and change the traffic",
            settings.describe_endpoints(),
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
