"""The service runner: status broadcasts, shutdown commands, signals and restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import Message, RecipeWrapper, Service, ServiceStatus, Subscribe
from zocalo_core._service.runner import EXIT_GRACE_EXPIRED, shutdown_command_matches
from zocalo_core._service.status import UtilizationTracker, host_id
from zocalo_core._service.supervisor import Supervisor, restart_delay


class Idle(Service):
    name = "Idle Service"
    subscriptions = [Subscribe("idle.work", "on_work")]

    def on_work(self, rw: RecipeWrapper, message: Message) -> None:
        rw.send(rw.payload)


def test_status_is_broadcast_in_the_existing_format(
    run_service: Any, collect: Any
) -> None:
    statuses = collect("transient.status", broadcast=True)
    running = run_service(Idle, tag="beamline-i03", status_interval=0.2)

    messages = statuses.wait_for(3, 10)
    running.stop()

    latest = messages[-1].body
    assert latest["host"] == "test.host.1"
    assert latest["service"] == "Idle Service"
    assert latest["serviceclass"] == "Idle"
    assert latest["tag"] == "beamline-i03"
    assert latest["status"] == int(ServiceStatus.IDLE)
    assert latest["statustext"] == "idle"
    assert isinstance(latest["utilization"], dict)
    assert "workflows" in latest
    deadline = time.monotonic() + 5
    while statuses.bodies[-1]["status"] != ServiceStatus.END:  # type: ignore[index]
        assert time.monotonic() < deadline, "no final END status was broadcast"
        time.sleep(0.02)


def test_a_matching_shutdown_command_stops_the_service(
    run_service: Any, observer: Any
) -> None:
    running = run_service(Idle)
    time.sleep(0.2)

    observer.broadcast("command", {"command": "shutdown", "host": "test.host.1"})

    running.thread.join(10)
    assert not running.thread.is_alive()
    assert running.exit_code == 0


def test_a_command_for_another_host_leaves_the_service_running(
    run_service: Any, observer: Any
) -> None:
    running = run_service(Idle)
    time.sleep(0.2)

    observer.broadcast(
        "command", {"command": "shutdown", "host": "other.host.2", "service": "Idle"}
    )

    running.thread.join(1)
    assert running.thread.is_alive()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ({"command": "shutdown", "host": "h.1"}, True),
        ({"command": "shutdown", "service": "Idle"}, True),
        ({"command": "shutdown", "service": "Idle Service"}, True),
        ({"command": "shutdown", "host": "h.1", "service": "Idle"}, True),
        ({"command": "shutdown", "host": "h.1", "service": "Other"}, False),
        ({"command": "shutdown", "host": "h.2", "service": "Idle"}, False),
        ({"command": "shutdown"}, False),
        ({"command": "liveness_check", "host": "h.1"}, False),
        (["shutdown"], False),
    ],
)
def test_shutdown_commands_must_match_everything_they_name(
    command: Any, expected: bool
) -> None:
    assert (
        shutdown_command_matches(command, "h.1", {"Idle", "Idle Service"}) is expected
    )


def test_the_host_id_is_the_reversed_host_name_and_pid() -> None:
    identity = host_id(pid=4321)

    assert identity.endswith(".4321")
    assert identity.split(".")[-2] == __import__("socket").getfqdn().split(".")[0]


def test_utilization_reports_shares_of_the_period() -> None:
    tracker = UtilizationTracker(period=10)
    tracker.record(2, now=100.0)
    tracker.record(4, now=105.0)

    assert tracker.report(now=110.0) == {"2": 0.5, "4": 0.5}


SERVICE_SCRIPT = """
import sys, threading, time
from zocalo_core import RunnerOptions, Service, ServiceRunner, Subscribe, start_recipe
from zocalo_core.testing import MemoryBroker, MemoryTransport

class Slow(Service):
    name = "Slow"
    subscriptions = [Subscribe("slow", "on_work")]

    def on_work(self, rw, message):
        print("handling", flush=True)
        time.sleep(float(rw.payload))
        print("handled", flush=True)

    def on_stop(self):
        print("stopped", flush=True)

broker = MemoryBroker()
sender = MemoryTransport(broker)
sender.connect()
recipe = {"1": {"queue": "slow"}, "start": [[1, sys.argv[1]]]}
start_recipe(sender, recipe, environment={"ID": "x"})
options = RunnerOptions(grace_period=float(sys.argv[2]), host="h.1")
sys.exit(ServiceRunner(Slow, MemoryTransport(broker), options=options).run())
"""


def run_slow_service(tmp_path: Path, work_seconds: float, grace: float) -> Any:
    script = tmp_path / "slow_service.py"
    script.write_text(textwrap.dedent(SERVICE_SCRIPT))
    process = subprocess.Popen(
        [sys.executable, str(script), str(work_seconds), str(grace)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "handling"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output.split()


def test_sigterm_finishes_the_current_message_then_stops(tmp_path: Path) -> None:
    exit_code, output = run_slow_service(tmp_path, work_seconds=1.0, grace=20)

    assert exit_code == 0
    assert output == ["handled", "stopped"]


def test_sigterm_returns_a_message_that_outlives_the_grace_period(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    exit_code, output = run_slow_service(tmp_path, work_seconds=60, grace=0.5)

    assert exit_code == EXIT_GRACE_EXPIRED
    assert "handled" not in output
    assert time.monotonic() - started < 20


def test_restart_delays_grow_and_are_capped() -> None:
    assert restart_delay(0) == pytest.approx(0.1)
    assert restart_delay(3) == pytest.approx(0.8)
    assert restart_delay(10) == 5.0


def test_the_supervisor_restarts_a_crashed_child_until_it_exits_cleanly(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "runs"
    child = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "runs = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(runs))\n"
        "sys.exit(0 if runs >= 3 else 1)\n"
    )

    exit_code = Supervisor([sys.executable, "-c", child]).run()

    assert exit_code == 0
    assert marker.read_text() == "3"


def test_the_supervisor_gives_up_after_its_restart_budget(tmp_path: Path) -> None:
    exit_code = Supervisor(
        [sys.executable, "-c", "raise SystemExit(7)"], max_restarts=1
    ).run()

    assert exit_code == 7


def test_sigterm_to_the_supervisor_is_passed_to_the_child(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"pathlib.Path({str(ready)!r}).write_text('1')\n"
        "time.sleep(30)\n"
    )
    supervisor_script = (
        "import sys\n"
        "from zocalo_core._service.supervisor import Supervisor\n"
        f"sys.exit(Supervisor([sys.executable, '-c', {child!r}]).run())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", supervisor_script])
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    os.kill(process.pid, signal.SIGTERM)

    assert process.wait(timeout=20) == 0
