"""The main job in separate processes on the real RabbitMQ, with exactly the commands
a user types: one `zocalo service` per service, `zocalo go`, then `zocalo shutdown`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

REPOSITORY = Path(__file__).resolve().parents[3]
SERVICES = ["Dispatcher", "FileWatcher", "Runner", "JSONLines"]
ZOCALO = [sys.executable, "-m", "zocalo_core._cli.main"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    shutil.copy(
        REPOSITORY / "examples" / "recipes" / "example.json", tmp_path / "recipes"
    )
    for folder in ("data", "results"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "site.yml"
    path.write_text(
        "version: 1\n"
        "storage:\n  plugin: storage\n  zocalo.recipe_directory: recipes\n"
        "runner:\n  plugin: runner\n  programs: [sha256sum]\n"
        "  working_roots: [data]\n  output_roots: [results]\n"
        f"  state_directory: {tmp_path / 'runner-state'}\n"
        "transport:\n  plugin: transport\n  default: pika\n"
        "rabbitmq:\n  plugin: pika\n  host: 127.0.0.1\n  port: 5672\n"
        "  username: guest\n  password: guest\n  vhost: /\n"
        "environments:\n  default: [storage, runner, transport, rabbitmq]\n"
    )
    return path


@pytest.fixture
def environment(site: Path) -> dict[str, str]:
    return {**os.environ, "ZOCALO_CONFIG": str(site), "ZOCALO_DEFAULT_ENV": ""}


@pytest.fixture
def services(
    environment: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started = {}
    for name in SERVICES:
        with (tmp_path / f"{name}.log").open("wb") as log:
            started[name] = subprocess.Popen(
                [*ZOCALO, "service", "-s", name],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.wait(10)


def logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {name}\n{(tmp_path / f'{name}.log').read_text(errors='replace')}"
        for name in SERVICES
    )


def test_the_main_job_runs_as_separate_services_on_rabbitmq(
    site: Path,
    environment: dict[str, str],
    services: dict[str, subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    inputs = {f"image_{number:04d}.txt": f"frame {number}\n" for number in range(1, 4)}
    for name, text in inputs.items():
        (data / name).write_text(text)

    go = subprocess.run(
        [*ZOCALO, "go", "-r", "example", "-s", f"workingdir={data}", "1234"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert go.returncode == 0, go.stderr
    recipe_id = go.stdout.strip()

    results = tmp_path / "results" / f"{recipe_id}.jsonl"
    deadline = time.monotonic() + 90
    while not (results.exists() and len(results.read_text().splitlines()) >= 3):
        dead = [
            name for name, process in services.items() if process.poll() is not None
        ]
        assert not dead, f"services exited early: {dead}\n{logs(tmp_path)}"
        assert time.monotonic() < deadline, f"no results in time\n{logs(tmp_path)}"
        time.sleep(0.2)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(Path(line["file"]).name for line in lines) == sorted(inputs)
    assert all(line["exit_code"] == 0 for line in lines)

    shutdown = subprocess.run(
        [*ZOCALO, "shutdown", *(arg for name in SERVICES for arg in ("-s", name))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shutdown.returncode == 0, shutdown.stderr
    for name, process in services.items():
        assert process.wait(60) == 0, f"{name} did not stop cleanly\n{logs(tmp_path)}"
    assert len(results.read_text().splitlines()) == 3


def test_a_supervised_service_stops_for_good_on_a_shutdown_command(
    environment: dict[str, str], tmp_path: Path
) -> None:
    with (tmp_path / "supervised.log").open("wb") as log:
        parent = subprocess.Popen(
            [*ZOCALO, "service", "-s", "jsonl", "--restart", "--tag", "supervised"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)
        assert parent.poll() is None, (tmp_path / "supervised.log").read_text()

        subprocess.run(
            [*ZOCALO, "shutdown", "-s", "JSONLines"],
            env=environment,
            check=True,
            capture_output=True,
            timeout=60,
        )

        assert parent.wait(60) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
