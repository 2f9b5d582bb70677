"""Service status: the codes of the existing system, host ids, and the status broadcast.

Status messages go to the broadcast `transient.status` in the format the existing
monitoring tools read: `host`, `status`, `statustext`, `service`, `serviceclass`,
`utilization` and the software version, plus the instance's `tag` when it has one.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

STATUS_BROADCAST = "transient.status"
COMMAND_BROADCAST = "command"

#: How long a status message stays worth delivering, in seconds.
STATUS_EXPIRATION = 15.0

#: Status is broadcast at least this often, in seconds, even when it does not change.
STATUS_INTERVAL = 6.0

#: ... and at most this often, in seconds, however often it changes.
MIN_STATUS_GAP = 1.0


class ServiceStatus(enum.IntEnum):
    """The status codes of the existing system, with the same numbers and texts."""

    TEARDOWN = -2
    NONE = -1
    NEW = 0
    STARTING = 1
    IDLE = 2
    TIMER = 3
    PROCESSING = 4
    SHUTDOWN = 5
    END = 6
    ERROR = 7

    @property
    def text(self) -> str:
        return _STATUS_TEXTS[self]


_STATUS_TEXTS = {
    ServiceStatus.TEARDOWN: "shutdown",
    ServiceStatus.NONE: "no service loaded",
    ServiceStatus.NEW: "constructing",
    ServiceStatus.STARTING: "starting",
    ServiceStatus.IDLE: "idle",
    ServiceStatus.TIMER: "timer event",
    ServiceStatus.PROCESSING: "processing",
    ServiceStatus.SHUTDOWN: "shutting down",
    ServiceStatus.END: "shutdown",
    ServiceStatus.ERROR: "error",
}


def host_id(pid: int | None = None) -> str:
    """This instance's id as the existing tools write it: reversed FQDN, a dot, the pid.

    `ws1.diamond.ac.uk` with pid 1234 gives `uk.ac.diamond.ws1.1234`.
    """
    name = socket.getfqdn() or socket.gethostname() or "localhost"
    reversed_name = ".".join(reversed(name.split(".")))
    return f"{reversed_name}.{os.getpid() if pid is None else pid}"


class UtilizationTracker:
    """How the last `period` seconds were spent, as a fraction per status code."""

    def __init__(self, period: float = STATUS_INTERVAL) -> None:
        self._period = period
        self._lock = threading.Lock()
        self._changes: collections.deque[tuple[float, int]] = collections.deque()

    def record(self, status: int, now: float | None = None) -> None:
        with self._lock:
            self._changes.append((time.monotonic() if now is None else now, status))

    def report(self, now: float | None = None) -> dict[str, float]:
        now = time.monotonic() if now is None else now
        window_start = now - self._period
        shares: dict[str, float] = {}
        with self._lock:
            self._trim(window_start)
            changes = list(self._changes)
        # Each status lasts until the next change; the last one lasts until now.
        ends = [since for since, _ in changes[1:]] + [now]
        for (since, status), until in zip(changes, ends, strict=True):
            duration = until - max(since, window_start)
            if duration > 0:
                key = str(status)
                shares[key] = shares.get(key, 0.0) + duration / self._period
        return {key: round(share, 4) for key, share in shares.items()}

    def _trim(self, window_start: float) -> None:
        # Keep the last change before the window: it says what the window started as.
        while len(self._changes) > 1 and self._changes[1][0] <= window_start:
            self._changes.popleft()


class StatusReporter:
    """Keeps a service's status; broadcasts it on change and every `interval` seconds.

    `publish(body)` is called with the status dict; it is expected to broadcast it with
    a short expiration. Failures to publish are logged and do not stop the service.
    """

    def __init__(
        self,
        publish: Callable[[Mapping[str, Any]], None],
        identity: Mapping[str, Any],
        *,
        interval: float = STATUS_INTERVAL,
    ) -> None:
        self._publish = publish
        self._identity = dict(identity)
        self._interval = interval
        self._status = ServiceStatus.NEW
        self._utilization = UtilizationTracker()
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> ServiceStatus:
        return self._status

    def set(self, status: ServiceStatus) -> None:
        if status == self._status:
            return
        self._status = status
        self._utilization.record(int(status))
        # Idle spells between messages are too short to be worth a broadcast each.
        if status != ServiceStatus.IDLE:
            self._changed.set()

    def snapshot(self) -> dict[str, Any]:
        return {
            **self._identity,
            "status": int(self._status),
            "statustext": self._status.text,
            "utilization": self._utilization.report(),
        }

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="zocalo-status", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._send()

    def _run(self) -> None:
        gap = min(MIN_STATUS_GAP, self._interval)
        while not self._stopped.is_set():
            self._send()
            # A busy service changes status with every message: a broadcast per
            # message would cost more than the messages. One a second still reports
            # every change promptly.
            self._stopped.wait(gap)
            self._changed.wait(max(0.0, self._interval - gap))
            self._changed.clear()

    def _send(self) -> None:
        try:
            self._publish(self.snapshot())
        except Exception:
            logger.warning("could not broadcast the service status", exc_info=True)
