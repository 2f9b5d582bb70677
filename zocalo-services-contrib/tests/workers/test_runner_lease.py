"""The Runner's leases: long commands hold no message, run once and report once.

The site's `lease_interval` of 0.2 s stands for a broker's consumer timeout: a job
of over a second must outlive several of them without being rerun or held.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from zocalo_services_contrib._runner import Runner

OUTPUTS = {"success": "out.success", "failure": "out.failure"}
LEASE_INTERVAL = 0.2


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


@pytest.fixture
def site(make_site: Any, work_root: Path) -> Any:
    return make_site(
        {
            "programs": ["sh"],
            "working_roots": [str(work_root)],
            "lease_interval": LEASE_INTERVAL,
            "heartbeat_interval": 0.05,
            "stale_after": 1.0,
        }
    )


@pytest.fixture
def outputs(collect: Any) -> dict[str, Any]:
    outputs = {name: collect(queue) for name, queue in OUTPUTS.items()}
    outputs["dead"] = collect("dlq.runner")
    return outputs


def counting_step(work_root: Path, seconds: float) -> dict[str, Any]:
    """A step whose command appends a line to `runs` and then sleeps."""
    script = f"echo run >> runs; sleep {seconds}; echo finished"
    return {
        "service": "Runner",
        "queue": "runner",
        "parameters": {"command": ["sh", "-c", script], "workdir": str(work_root)},
    }


def runs(work_root: Path) -> int:
    path = work_root / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_job_longer_than_the_lease_runs_once_and_reports_once(
    run_service: Any,
    tools: Any,
    site: Any,
    work_root: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
) -> None:
    transport = tools.TimingTransport(memory_broker)
    run_service(Runner, site, transport)

    tools.start_step(counting_step(work_root, 1.2), {"file": "x"}, OUTPUTS)

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    assert message.body["payload"]["stdout"] == "finished\n"
    assert message.body["payload"]["duration"] >= 1.2
    assert memory_broker.wait_idle(tools.WAIT)
    outputs["success"].assert_quiet(2 * LEASE_INTERVAL)
    assert runs(work_root) == 1
    assert outputs["failure"].bodies == outputs["dead"].bodies == []
    visits = [m for m in transport.deliveries if m.destination == "runner"]
    assert len(visits) >= 4, "the lease was not renewed while the job ran"
    assert transport.longest_hold() < LEASE_INTERVAL


def test_two_runners_share_the_leases_and_still_run_the_job_once(
    run_service: Any,
    tools: Any,
    site: Any,
    work_root: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
) -> None:
    first = tools.TimingTransport(memory_broker)
    second = tools.TimingTransport(memory_broker)
    run_service(Runner, site, first)
    run_service(Runner, site, second)

    for number in range(3):
        step = counting_step(work_root, 0.8)
        tools.start_step(step, {"file": f"f{number}"}, OUTPUTS)

    outputs["success"].wait_for(3, tools.WAIT)
    assert memory_broker.wait_idle(tools.WAIT)
    assert runs(work_root) == 3
    assert len(outputs["success"].bodies) == 3
    holds = [t.longest_hold() for t in (first, second) if t.settled]
    assert holds
    assert max(holds) < LEASE_INTERVAL


def test_an_identical_request_does_not_run_the_job_again(
    run_service: Any,
    tools: Any,
    site: Any,
    work_root: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_service(Runner, site)
    step = counting_step(work_root, 0.3)

    tools.start_step(step, {"file": "same"}, OUTPUTS)
    tools.start_step(step, {"file": "same"}, OUTPUTS)

    outputs["success"].wait_for(1, tools.WAIT)
    assert memory_broker.wait_idle(tools.WAIT)
    assert runs(work_root) == 1
    assert len(outputs["success"].bodies) == 1
    assert any("identical request" in r.getMessage() for r in caplog.records)


def test_a_job_whose_runner_died_is_reported_as_failed_not_rerun(
    run_service: Any,
    tools: Any,
    site: Any,
    work_root: Path,
    outputs: dict[str, Any],
    state_home: Path,
) -> None:
    # A job claimed by a Runner process that is gone: its state file says
    # running, with a pid that no longer exists and an old heartbeat.
    dead = subprocess.Popen(["true"])
    dead.wait()
    state_directory = state_home / "zocalo" / "runner"
    state_directory.mkdir(parents=True)
    state = {
        "status": "running",
        "token": "token-1",
        "host": socket.gethostname(),
        "pid": dead.pid,
        "command": ["sh", "-c", "echo run >> runs"],
        "workdir": str(work_root),
        "started": time.time() - 30,
        "heartbeat": time.time() - 20,
    }
    (state_directory / "job-1.json").write_text(json.dumps(state))
    run_service(Runner, site)
    lease = {"job": "job-1", "token": "token-1", "delay": 0.1, "input": {"file": "a"}}

    step = counting_step(work_root, 0)
    tools.start_step(step, {"zocalo-runner-lease": lease}, OUTPUTS)

    [message] = outputs["failure"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    assert "stopped sending heartbeats" in result["error"]
    assert result["input"] == {"file": "a"}
    assert runs(work_root) == 0
    state_file = state_directory / "job-1.json"
    assert tools.wait_until(
        lambda: json.loads(state_file.read_text())["status"] == "reported"
    )


def test_a_stopped_runner_interrupts_its_job_and_another_reports_it(
    run_service: Any,
    tools: Any,
    site: Any,
    work_root: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
) -> None:
    stopping = run_service(Runner, site)
    tools.start_step(counting_step(work_root, 30), {}, OUTPUTS)
    assert tools.wait_until(lambda: runs(work_root) == 1)

    started = time.monotonic()
    stopping.stop()
    assert time.monotonic() - started < 5, "stopping waited for the command"
    run_service(Runner, site)

    [message] = outputs["failure"].wait_for(1, tools.WAIT)
    assert "the Runner stopped" in message.body["payload"]["error"]
    assert memory_broker.wait_idle(tools.WAIT)
    assert runs(work_root) == 1


def test_a_full_runner_waits_for_room_before_starting_more(
    run_service: Any,
    tools: Any,
    make_site: Any,
    work_root: Path,
    outputs: dict[str, Any],
) -> None:
    site = make_site(
        {
            "programs": ["sh"],
            "working_roots": [str(work_root)],
            "max_jobs": 1,
            "lease_interval": LEASE_INTERVAL,
            "heartbeat_interval": 0.05,
            "stale_after": 1.0,
        }
    )
    run_service(Runner, site)
    script = "echo start >> log; sleep 0.3; echo end >> log"
    step = {
        "service": "Runner",
        "queue": "runner",
        "parameters": {"command": ["sh", "-c", script], "workdir": str(work_root)},
    }

    for number in range(2):
        tools.start_step(step, {"file": f"f{number}"}, OUTPUTS)

    outputs["success"].wait_for(2, tools.WAIT)
    lines = (work_root / "log").read_text().split()
    assert lines == ["start", "end", "start", "end"], "two jobs ran at once"
