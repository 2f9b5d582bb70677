"""Running a service in a background thread for a test, as `zocalo service` would."""

from __future__ import annotations

import threading
from typing import Any

from zocalo_core._service import RunnerOptions, Service, ServiceRunner
from zocalo_core.transport import Transport


class ServiceThread:
    """A `ServiceRunner` for `service_class` on `transport`, run in a daemon thread.

    Signals are left alone and the host id is fixed (`test.host.1` unless given), so a
    test can match status and shutdown messages. `stop()` asks the runner to stop and
    waits for it, with a bound; the test fails if it does not stop in time.
    """

    def __init__(
        self,
        service_class: type[Service],
        transport: Transport,
        *,
        site: Any = None,
        **options: Any,
    ) -> None:
        options.setdefault("handle_signals", False)
        options.setdefault("host", "test.host.1")
        self.runner = ServiceRunner(
            service_class, transport, site=site, options=RunnerOptions(**options)
        )
        self.exit_code: int | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"service-{service_class.__name__}", daemon=True
        )

    def _run(self) -> None:
        self.exit_code = self.runner.run()

    @property
    def service(self) -> Service | None:
        """The running service object, once the runner has made it."""
        return self.runner.service

    def start(self) -> ServiceThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the service and return its exit code."""
        self.runner.request_stop()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"{self.thread.name} did not stop within {timeout} s")
        return self.exit_code
