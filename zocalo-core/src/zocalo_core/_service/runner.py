"""Running one service: the transport, the status broadcast, commands and signals.

The runner owns the transport. Messages are handled on the transport's delivery
threads, one at a time under the runner's lock, so service code needs no locks of its
own. The runner stops when the service asks, on a matching
`shutdown` command broadcast, or on SIGTERM/SIGINT; the message being handled then is
finished, or, past the grace period, returned to the broker by dropping the connection.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from zocalo_core._errors import DisconnectedError, ZocaloError
from zocalo_core._service.base import Service, Subscribe, SubscribeBroadcast
from zocalo_core._service.status import (
    COMMAND_BROADCAST,
    STATUS_BROADCAST,
    STATUS_EXPIRATION,
    STATUS_INTERVAL,
    ServiceStatus,
    StatusReporter,
    host_id,
)
from zocalo_core._version import __version__
from zocalo_core.transport import ConnectionState

if TYPE_CHECKING:
    from zocalo_core.transport import Message, Subscription, Transport

logger = logging.getLogger(__name__)

#: Exit code of a service stopped because its broker connection was lost for good.
EXIT_DISCONNECTED = 3
#: Exit code of a service that failed outside message handling (start-up, timers).
EXIT_SERVICE_FAILED = 4
#: Exit code of a service killed because its current message outlived the grace period.
EXIT_GRACE_EXPIRED = 5
#: Seconds between checks, while no message comes, that the transport has not given up.
TRANSPORT_CHECK_INTERVAL = 0.5


@dataclass
class RunnerOptions:
    """How a runner runs its service."""

    tag: str | None = None
    grace_period: float = 30.0
    status_interval: float = STATUS_INTERVAL
    handle_signals: bool = True
    host: str = field(default_factory=host_id)
    #: Called with each message's queue (or topic) just before the service handles it;
    #: `zocalo run` uses it to show progress. Exceptions from it are logged and ignored.
    on_message: Callable[[str, Message], None] | None = None


def shutdown_command_matches(
    command: Mapping[str, Any], host: str, service_names: set[str]
) -> bool:
    """Whether a `command` broadcast asks this instance to shut down.

    The message must name a host, a service or both, and every one it names must match:
    a command naming a host and a service stops only instances matching both.
    """
    if not isinstance(command, Mapping) or command.get("command") != "shutdown":
        return False
    if "host" not in command and "service" not in command:
        return False
    if "host" in command and command["host"] != host:
        return False
    return not ("service" in command and command["service"] not in service_names)


class ServiceRunner:
    """Runs one service on one transport until it is told to stop."""

    def __init__(
        self,
        service_class: type[Service],
        transport: Transport,
        *,
        site: Any = None,
        options: RunnerOptions | None = None,
    ) -> None:
        self.service_class = service_class
        self.transport = transport
        self.site = site
        self.options = options or RunnerOptions()
        self._stop = threading.Event()
        self._exit_code = 0
        self._last_handled = time.monotonic()
        self._busy = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self.service: Service | None = None
        self.status = StatusReporter(
            self._publish_status,
            self._identity(),
            interval=self.options.status_interval,
        )

    def _identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "host": self.options.host,
            "service": self.service_class.service_name(),
            "serviceclass": self.service_class.__name__,
            "zocalo": __version__,
            "workflows": __version__,
        }
        if self.options.tag:
            identity["tag"] = self.options.tag
        return identity

    def _publish_status(self, body: Mapping[str, Any]) -> None:
        if self.transport.is_connected():
            self.transport.broadcast(
                STATUS_BROADCAST, dict(body), expiration=STATUS_EXPIRATION
            )

    def request_stop(self) -> None:
        """Stop after the current message; safe from any thread and signal handlers."""
        self._stop.set()

    def run(self) -> int:
        """Run the service; returns the process exit code."""
        previous_handlers = self._install_signal_handlers()
        try:
            return self._run()
        finally:
            self._restore_signal_handlers(previous_handlers)

    def _run(self) -> int:
        self.status.set(ServiceStatus.STARTING)
        try:
            self.transport.connect()
            self.status.start()
            self._start_service()
        except DisconnectedError as exc:
            logger.error("cannot start %s: %s", self.service_class.service_name(), exc)
            return EXIT_DISCONNECTED
        except Exception:
            logger.critical(
                "service %s failed to start",
                self.service_class.service_name(),
                exc_info=True,
            )
            self._finish(ServiceStatus.ERROR)
            return EXIT_SERVICE_FAILED
        return self._main_loop()

    def _start_service(self) -> None:
        service = self.service_class(self.transport, site=self.site)
        service._shutdown_requested = self.request_stop
        self.service = service
        self._subscriptions.append(
            self.transport.subscribe_broadcast(COMMAND_BROADCAST, self._on_command)
        )
        service.on_start()
        for declaration in service.subscriptions:
            self._subscribe(declaration)
        logger.info(
            "service %s started on %s", service.service_name(), self.options.host
        )

    def _subscribe(self, declaration: Subscribe | SubscribeBroadcast) -> None:
        def deliver(message: Message) -> None:
            self._dispatch(declaration, message)

        if isinstance(declaration, SubscribeBroadcast):
            subscription = self.transport.subscribe_broadcast(
                declaration.topic, deliver
            )
        else:
            subscription = self.transport.subscribe(
                declaration.queue, deliver, prefetch=declaration.prefetch
            )
        self._subscriptions.append(subscription)

    def _on_command(self, message: Message) -> None:
        names = {self.service_class.service_name(), self.service_class.__name__}
        if shutdown_command_matches(message.body, self.options.host, names):
            logger.info("shutdown requested by a command broadcast")
            self.request_stop()

    def _main_loop(self) -> int:
        """Wait for the end; meanwhile run the idle handler and watch the transport.

        Messages are handled on the transport's delivery threads (see `_dispatch`):
        handing each one to this thread as well would cost a thread switch per
        message for nothing.
        """
        assert self.service is not None
        idle_timeout = self.service.idle_timeout
        self._last_handled = time.monotonic()
        self.status.set(ServiceStatus.IDLE)
        while not self._stop.is_set():
            wait = TRANSPORT_CHECK_INTERVAL
            if idle_timeout is not None:
                idle_at = self._last_handled + idle_timeout
                wait = max(0.0, min(wait, idle_at - time.monotonic()))
            if self._stop.wait(wait):
                break
            if self.transport.state is ConnectionState.FAILED:
                logger.error(
                    "lost the broker connection: the %s transport gave up restoring it",
                    self.transport.name,
                )
                self._stop_with(EXIT_DISCONNECTED)
            elif (
                idle_timeout is not None
                and time.monotonic() >= self._last_handled + idle_timeout
            ):
                self._run_idle()
        self._finish(ServiceStatus.END if self._exit_code == 0 else ServiceStatus.ERROR)
        return self._exit_code

    def _stop_with(self, exit_code: int) -> None:
        if self._exit_code == 0:
            self._exit_code = exit_code
        self.request_stop()

    def _dispatch(self, declaration: Any, message: Message) -> None:
        """On a delivery thread: hand one message to the service, one at a time.

        A message that arrives once the runner is stopping is left unsettled: it goes
        back to its queue when the subscriptions end.
        """
        assert self.service is not None
        with self._busy:
            if self._stop.is_set():
                return
            self.status.set(ServiceStatus.PROCESSING)
            self._notify(declaration, message)
            try:
                if isinstance(declaration, SubscribeBroadcast):
                    self.service.handle_broadcast(declaration, message)
                else:
                    self.service.handle_message(declaration, message)
            except DisconnectedError as exc:
                if self._transport_restoring():
                    logger.warning(
                        "the broker connection was lost while handling a message "
                        "(it comes again once the connection is restored): %s",
                        exc,
                    )
                else:
                    logger.error("lost the broker connection: %s", exc)
                    self._stop_with(EXIT_DISCONNECTED)
            except BaseException:
                logger.critical(
                    "service %s failed while handling message %s; stopping",
                    self.service.service_name(),
                    message.message_id,
                    exc_info=True,
                )
                self._stop_with(EXIT_SERVICE_FAILED)
            finally:
                self._last_handled = time.monotonic()
                self.status.set(ServiceStatus.IDLE)

    def _transport_restoring(self) -> bool:
        return self.transport.state in (
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTED,
        )

    def _notify(self, declaration: Any, message: Message) -> None:
        if self.options.on_message is None:
            return
        destination = getattr(declaration, "queue", None) or declaration.topic
        try:
            self.options.on_message(destination, message)
        except Exception:
            logger.warning("the on_message observer failed", exc_info=True)

    def _run_idle(self) -> None:
        assert self.service is not None
        with self._busy:
            if self._stop.is_set():
                return
            self.status.set(ServiceStatus.TIMER)
            try:
                self.service.on_idle()
            except ZocaloError as exc:
                logger.error(
                    "the idle handler of %s failed: %s",
                    self.service.service_name(),
                    exc,
                )
                self._stop_with(EXIT_SERVICE_FAILED)
            except Exception:
                logger.critical("the idle handler failed", exc_info=True)
                self._stop_with(EXIT_SERVICE_FAILED)
            finally:
                self._last_handled = time.monotonic()
                self.status.set(ServiceStatus.IDLE)

    def _finish(self, final_status: ServiceStatus) -> None:
        self.status.set(ServiceStatus.SHUTDOWN)
        if self.service is not None and self.transport.is_connected():
            try:
                with self._busy:
                    self.service.on_stopping()
            except Exception:
                logger.exception(
                    "on_stopping of %s failed", self.service.service_name()
                )
        for subscription in reversed(self._subscriptions):
            try:
                self.transport.unsubscribe(subscription)
            except ZocaloError as exc:
                logger.warning("could not unsubscribe %s: %s", subscription, exc)
        self._subscriptions.clear()
        if self.service is not None:
            try:
                self.service.on_stop()
            except Exception:
                logger.exception("on_stop of %s failed", self.service.service_name())
        self.status.set(final_status)
        self.status.stop()
        try:
            self.transport.disconnect()
        except ZocaloError as exc:
            logger.warning("could not disconnect cleanly: %s", exc)

    # Signals.

    def _install_signal_handlers(self) -> dict[int, Any]:
        if (
            not self.options.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        self.request_stop()
        watchdog = threading.Timer(self.options.grace_period, self._grace_expired)
        watchdog.daemon = True
        watchdog.start()

    def _grace_expired(self) -> None:
        if not self._busy.locked():
            return
        logger.error(
            "the current message took longer than %.0f s; returning it to the broker",
            self.options.grace_period,
        )
        try:
            self.transport.disconnect()
        finally:
            os._exit(EXIT_GRACE_EXPIRED)
