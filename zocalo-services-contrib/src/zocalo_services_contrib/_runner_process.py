"""Running one command: no shell, its own process group, bounded output, a timeout.

Output is read as it comes and only the last `max_output` bytes of each stream are
kept, so a command that writes gigabytes costs no memory. The caller gets a heartbeat
callback while the command runs and may stop it through an event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from zocalo_services_contrib._runner_command import CommandSpec, minimal_environment

logger = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL when a command is stopped.
KILL_GRACE = 2.0
#: Seconds to go on reading after the command ended, for children holding its pipes.
DRAIN_AFTER_EXIT = 1.0
_CHUNK = 65536


@dataclass(frozen=True)
class CommandResult:
    """How a command ended. `exit_code` is None if it never started; negative if a
    signal ended it. `error` says why it counts as failed beyond its exit code."""

    exit_code: int | None
    duration: float
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> CommandResult:
        return cls(**data)

    @classmethod
    def failed(cls, error: str, duration: float = 0.0) -> CommandResult:
        return cls(None, duration, "", "", error=error)


class _Tail:
    """The last `limit` bytes written to one stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, then SIGKILL it after a grace period."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(KILL_GRACE)
    # The group may outlive its leader; make sure nothing of it is left.
    _signal_group(process, signal.SIGKILL)


class _Watch:
    """The loop that reads a running command's output until it ends."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        spec: CommandSpec,
        heartbeat: Callable[[], None],
        heartbeat_interval: float,
        stop: threading.Event,
    ) -> None:
        self.process = process
        self.spec = spec
        self.heartbeat = heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.stop = stop
        self.tails: dict[str, _Tail] = {}
        self.timed_out = False
        self.stopped = False

    def run(self, started: float) -> None:
        deadline = started + self.spec.timeout
        next_beat = started + self.heartbeat_interval
        exited_at: float | None = None
        with selectors.DefaultSelector() as selector:
            for name, stream in (
                ("stdout", self.process.stdout),
                ("stderr", self.process.stderr),
            ):
                assert stream is not None
                self.tails[name] = _Tail(self.spec.max_output)
                selector.register(stream, selectors.EVENT_READ, name)
            while True:
                now = time.monotonic()
                if now >= next_beat:
                    self.heartbeat()
                    next_beat = now + self.heartbeat_interval
                if exited_at is None and self.process.poll() is not None:
                    exited_at = now
                if exited_at is not None and (
                    not selector.get_map() or now - exited_at > DRAIN_AFTER_EXIT
                ):
                    return
                self._check_limits(now, deadline)
                wait = max(0.0, min(next_beat, deadline, now + 0.2) - now)
                self._wait(selector, wait)

    def _wait(self, selector: selectors.BaseSelector, wait: float) -> None:
        if not selector.get_map():
            # The command closed its output but runs on; only its exit is awaited.
            self.stop.wait(min(wait, 0.05))
            return
        for key, _ in selector.select(wait):
            chunk = os.read(key.fd, _CHUNK)
            if chunk:
                self.tails[key.data].add(chunk)
            else:
                selector.unregister(key.fileobj)

    def _check_limits(self, now: float, deadline: float) -> None:
        if self.timed_out or self.stopped:
            return
        if now >= deadline:
            self.timed_out = True
            stop_process(self.process)
        elif self.stop.is_set():
            self.stopped = True
            stop_process(self.process)

    def tail(self, name: str) -> str:
        return self.tails[name].text()


def _error_text(watch: _Watch) -> str | None:
    if watch.timed_out:
        return f"the command ran longer than its timeout of {watch.spec.timeout:g} s"
    if watch.stopped:
        return "the Runner stopped while the command was running"
    return None


def _spawn(spec: CommandSpec) -> subprocess.Popen[bytes]:
    # The command gets a session of its own so that a timeout can end everything it
    # started. NOTE: a Runner killed outright (SIGKILL) cannot end that session; the
    # command then finishes unwatched and the job is reported as lost by the next
    # Runner whose lease finds its heartbeat stale. It is never run a second time.
    return subprocess.Popen(
        list(spec.argv),
        executable=spec.executable,
        cwd=spec.workdir,
        env=minimal_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )


def run_command(
    spec: CommandSpec,
    *,
    heartbeat: Callable[[], None],
    heartbeat_interval: float,
    stop: threading.Event,
) -> CommandResult:
    """Run `spec` to its end; never raises for the command's own failures."""
    started = time.monotonic()
    try:
        process = _spawn(spec)
    except OSError as exc:
        error = f"the command could not be started: {exc}"
        return CommandResult.failed(error, time.monotonic() - started)
    watch = _Watch(process, spec, heartbeat, heartbeat_interval, stop)
    try:
        watch.run(started)
        exit_code = process.wait(KILL_GRACE + 1)
    except subprocess.TimeoutExpired:
        stop_process(process)
        exit_code = process.wait(KILL_GRACE)
    finally:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return CommandResult(
        exit_code=exit_code,
        duration=round(time.monotonic() - started, 6),
        stdout=watch.tail("stdout"),
        stderr=watch.tail("stderr"),
        timed_out=watch.timed_out,
        error=_error_text(watch),
    )
