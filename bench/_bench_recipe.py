"""The 3-step recipe: three step processes in a row, fed and drained by one driver.

The driver is raw pika for both sides, so only the steps differ: it declares the
queues, waits until each step consumes, puts every recipe on the first queue and
times first send to last arrival on the final queue.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from _bench_common import (
    BenchError,
    QueueRegistry,
    consumer_count,
    open_connection,
    small_body,
    wait_until,
)
from _bench_raw import persistent_properties

logger = logging.getLogger(__name__)

STEP_SCRIPT = Path(__file__).with_name("_bench_step.py")
STEPS = 3
STEP_START_TIMEOUT = 60.0
STEP_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RecipeFigures:
    """A recipe case's rate, the largest step's peak RSS, the steps' CPU per recipe."""

    recipes_per_s: float
    peak_rss_mib: float
    cpu_ms_per_recipe: float


@dataclass
class StepProcess:
    """A step subprocess this benchmark started, with the file its stderr goes to."""

    process: subprocess.Popen[bytes]
    stderr: IO[bytes]
    in_queue: str

    def peak_rss_mib(self) -> float:
        """VmHWM of the process, read while it still runs."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"no VmHWM in /proc/{self.process.pid}/status")

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        # Fields after the command name, which may hold spaces, start at field 3.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended in time; only this pid."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STEP_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("step on %s ignored SIGTERM; killing", self.in_queue)
                self.process.kill()
                self.process.wait(5.0)
        self.stderr.close()


def _start_step(
    side: str, transactional: bool, prefetch: int, in_queue: str, out_queue: str
) -> StepProcess:
    mode = "tx" if transactional else "plain"
    command = [sys.executable, str(STEP_SCRIPT), side, mode, str(prefetch)]
    # Closed by StepProcess.stop, once the process has ended.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        [*command, in_queue, out_queue],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    return StepProcess(process, stderr, in_queue)


def _wait_for_steps(channel: Any, steps: list[StepProcess]) -> None:
    def all_consuming() -> bool:
        for step in steps:
            if step.process.poll() is not None:
                message = (
                    f"step process on {step.in_queue} exited with "
                    f"{step.process.returncode}:\n{step.stderr_tail()}"
                )
                raise BenchError(message)
        return all(consumer_count(channel, step.in_queue) >= 1 for step in steps)

    wait_until(all_consuming, STEP_START_TIMEOUT, "the step processes to consume")


def _drive(
    channel: Any, connection: Any, queues: list[str], count: int, timeout: float
) -> float:
    arrivals = [0, 0.0]

    def arrived(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        arrivals[0] += 1
        arrivals[1] = time.perf_counter()

    channel.basic_consume(queues[-1], arrived, auto_ack=True)
    started = time.perf_counter()
    for index in range(count):
        body = json.dumps(small_body(index)).encode()
        channel.basic_publish("", queues[0], body, properties=persistent_properties())
    deadline = time.monotonic() + timeout
    while arrivals[0] < count:
        if time.monotonic() > deadline:
            message = f"recipes: {arrivals[0]} of {count} arrived in {timeout:g} s"
            raise BenchError(message)
        connection.process_data_events(time_limit=0.1)
    return count / (arrivals[1] - started)


def run_recipes(
    registry: QueueRegistry,
    side: str,
    *,
    transactional: bool,
    prefetch: int,
    count: int,
    timeout: float,
) -> RecipeFigures:
    """Recipes per second through three step processes of `side`, and their costs."""
    label = f"{side}-{'tx' if transactional else 'plain'}"
    queues = [registry.new(f"{label}-step{i}") for i in range(1, STEPS + 1)]
    queues.append(registry.new(f"{label}-done"))
    connection = open_connection("bench-recipe-driver")
    steps: list[StepProcess] = []
    try:
        channel = connection.channel()
        registry.declare(channel, *queues)
        for in_queue, out_queue in itertools.pairwise(queues):
            steps.append(
                _start_step(side, transactional, prefetch, in_queue, out_queue)
            )
        _wait_for_steps(channel, steps)
        cpu_before = sum(step.cpu_seconds() for step in steps)
        rate = _drive(channel, connection, queues, count, timeout)
        cpu_used = sum(step.cpu_seconds() for step in steps) - cpu_before
        peak_rss = max(step.peak_rss_mib() for step in steps)
    finally:
        for step in steps:
            step.stop()
        connection.close()
    return RecipeFigures(rate, peak_rss, cpu_used * 1000 / count)
