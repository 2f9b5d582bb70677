"""Restarting a crashed service from a supervising parent process (`--restart`).

The parent runs the service as a child process with the same arguments minus
`--restart`. A child that exits 0 was stopped on purpose (a shutdown command, a signal)
and the parent exits too; any other exit is a crash and the child is started again, with
a back-off that grows while crashes come quickly and resets after a long run.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

logger = logging.getLogger(__name__)

#: A run shorter than this, in seconds, counts as a quick crash for the back-off.
QUICK_CRASH = 10.0
MAX_BACKOFF = 5.0


def restart_delay(quick_crashes: int) -> float:
    return float(min(MAX_BACKOFF, 0.1 * 2**quick_crashes))


class Supervisor:
    """Runs `command` as a child, restarting it after crashes, until it exits with 0."""

    def __init__(
        self, command: Sequence[str], *, max_restarts: int | None = None
    ) -> None:
        self.command = list(command)
        self.max_restarts = max_restarts
        self._child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._forward)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _loop(self) -> int:
        quick_crashes = 0
        restarts = 0
        while True:
            started = time.monotonic()
            self._child = subprocess.Popen(self.command)
            exit_code = self._child.wait()
            if exit_code == 0 or self._stopping.is_set():
                return exit_code
            ran_for = time.monotonic() - started
            quick_crashes = quick_crashes + 1 if ran_for < QUICK_CRASH else 0
            if self.max_restarts is not None and restarts >= self.max_restarts:
                logger.error("service exited with %d; not restarting again", exit_code)
                return exit_code
            delay = restart_delay(quick_crashes)
            logger.warning(
                "service exited with %d after %.1f s; restarting in %.1f s",
                exit_code,
                ran_for,
                delay,
            )
            restarts += 1
            if self._stopping.wait(delay):
                return exit_code

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)


def child_command(argv: Sequence[str]) -> list[str]:
    """The command line of the child: this `zocalo` invocation without `--restart`."""
    arguments = [argument for argument in argv if argument not in ("--restart", "-r")]
    return [sys.executable, "-m", "zocalo_core._cli.main", *arguments]
