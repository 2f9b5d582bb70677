"""The FileWatcher on the memory transport."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import start_recipe
from zocalo_services_contrib._filewatcher import FileWatcher

OUTPUTS = {"every": "out.every", "finally": "out.finally", "timeout": "out.timeout"}


def watch_step(directory: Path, **parameters: Any) -> dict[str, Any]:
    parameters.setdefault("interval", 0.05)
    parameters.setdefault("timeout", 10)
    return {
        "service": "FileWatcher",
        "queue": "filewatcher",
        "parameters": {"directory": str(directory), **parameters},
    }


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    directory = tmp_path / "inputs"
    directory.mkdir()
    return directory


@pytest.fixture
def outputs(collect: Any) -> dict[str, Any]:
    return {name: collect(queue) for name, queue in OUTPUTS.items()}


def test_one_message_per_file_then_finally(
    run_service: Any, tools: Any, inputs: Path, outputs: dict[str, Any]
) -> None:
    for name in ("b.txt", "a.txt", "c.txt", "skip.dat", ".hidden.txt"):
        (inputs / name).write_text(name)
    (inputs / "folder.txt").mkdir()
    run_service(FileWatcher, None)

    tools.start_step(watch_step(inputs, pattern="*.txt", expected_count=3), {}, OUTPUTS)

    outputs["finally"].wait_for(1, tools.WAIT)
    outputs["every"].wait_for(3, tools.WAIT)
    assert tools.payloads(outputs["every"]) == [
        {"file": str(inputs / name), "name": name, "index": index}
        for index, name in enumerate(["a.txt", "b.txt", "c.txt"])
    ]
    [done] = tools.payloads(outputs["finally"])
    assert done == {
        "files": [str(inputs / name) for name in ("a.txt", "b.txt", "c.txt")],
        "count": 3,
    }
    assert outputs["timeout"].bodies == []


def test_files_arriving_after_the_start_are_announced_as_they_appear(
    run_service: Any,
    tools: Any,
    inputs: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
) -> None:
    transport = tools.TimingTransport(memory_broker)
    run_service(FileWatcher, None, transport)
    expected = ["second.cbf", "first.cbf", "third.cbf"]
    arrivals = [("first.cbf", 0.2), ("second.cbf", 0.4), ("third.cbf", 0.6)]
    timers = [
        threading.Timer(delay, (inputs / name).write_text, args=(name,))
        for name, delay in arrivals
    ]
    tools.start_step(watch_step(inputs, expected_files=expected), {}, OUTPUTS)
    for timer in timers:
        timer.start()

    outputs["finally"].wait_for(1, tools.WAIT)
    outputs["every"].wait_for(3, tools.WAIT)
    for timer in timers:
        timer.join(tools.WAIT)
    announced = tools.payloads(outputs["every"])
    assert [item["name"] for item in announced] == [name for name, _ in arrivals]
    # The index is the file's place in expected_files, whatever the arrival order.
    assert [item["index"] for item in announced] == [1, 0, 2]
    # It waited by checkpoints: many short looks, none holding its message.
    looks = [m for m in transport.deliveries if m.destination == "filewatcher"]
    assert len(looks) > 5
    assert transport.longest_hold() < 0.5


def test_a_file_still_growing_is_announced_once_it_stops(
    run_service: Any, tools: Any, inputs: Path, outputs: dict[str, Any]
) -> None:
    path = inputs / "growing.h5"
    path.write_bytes(b"x")
    finished = threading.Event()

    def grow() -> None:
        for _ in range(30):
            time.sleep(0.02)
            with path.open("ab") as handle:
                handle.write(b"more data")
        finished.set()

    writer = threading.Thread(target=grow, daemon=True)
    run_service(FileWatcher, None)
    writer.start()

    tools.start_step(watch_step(inputs, pattern="*.h5", interval=0.25), {}, OUTPUTS)

    outputs["every"].wait_for(1, tools.WAIT)
    assert finished.is_set(), "announced while the file was still being written"
    writer.join(tools.WAIT)
    outputs["finally"].wait_for(1, tools.WAIT)


def test_timeout_reports_the_missing_names_and_stops(
    run_service: Any,
    tools: Any,
    inputs: Path,
    outputs: dict[str, Any],
    memory_broker: Any,
) -> None:
    (inputs / "a.cbf").write_text("a")
    run_service(FileWatcher, None)
    step = watch_step(inputs, expected_files=["a.cbf", "b.cbf", "c.cbf"], timeout=0.5)

    started = time.monotonic()
    tools.start_step(step, {}, OUTPUTS)

    [message] = outputs["timeout"].wait_for(1, tools.WAIT)
    outputs["every"].wait_for(1, tools.WAIT)
    assert time.monotonic() - started >= 0.5
    payload = message.body["payload"]
    assert payload["missing"] == ["b.cbf", "c.cbf"]
    assert payload["missing_count"] == 2
    assert payload["seen"] == ["a.cbf"]
    assert [item["name"] for item in tools.payloads(outputs["every"])] == ["a.cbf"]
    assert memory_broker.wait_idle(
        tools.WAIT, match=lambda queued: queued.destination == "filewatcher"
    ), "the watch went on looking after its timeout"
    assert outputs["finally"].bodies == []


def test_a_count_not_reached_times_out_with_the_count_missing(
    run_service: Any, tools: Any, inputs: Path, outputs: dict[str, Any]
) -> None:
    (inputs / "one.txt").write_text("1")
    run_service(FileWatcher, None)
    step = watch_step(inputs, pattern="*.txt", expected_count=3, timeout=0.4)

    tools.start_step(step, {}, OUTPUTS)

    [message] = outputs["timeout"].wait_for(1, tools.WAIT)
    assert message.body["payload"]["missing_count"] == 2
    assert message.body["payload"]["seen"] == ["one.txt"]


def test_a_rerun_over_the_same_inputs_sends_the_same_messages(
    run_service: Any, tools: Any, inputs: Path, outputs: dict[str, Any]
) -> None:
    for number in range(5):
        (inputs / f"image_{number:04d}.cbf").write_text(str(number))
    run_service(FileWatcher, None)
    step = watch_step(inputs, pattern="image_*.cbf")

    tools.start_step(step, {}, OUTPUTS, recipe_id="first-run")
    outputs["finally"].wait_for(1, tools.WAIT)
    tools.start_step(step, {}, OUTPUTS, recipe_id="second-run")
    outputs["finally"].wait_for(2, tools.WAIT)
    outputs["every"].wait_for(10, tools.WAIT)

    by_run: dict[str, list[Any]] = {"first-run": [], "second-run": []}
    for body in outputs["every"].bodies:
        by_run[body["environment"]["ID"]].append(body["payload"])
    assert len(by_run["first-run"]) == 5
    assert by_run["first-run"] == by_run["second-run"]
    first, second = tools.payloads(outputs["finally"])
    assert first == second


def test_plain_outputs_get_the_per_file_messages(
    run_service: Any, tools: Any, inputs: Path, collect: Any
) -> None:
    (inputs / "only.txt").write_text("x")
    announced = collect("plain.next")
    run_service(FileWatcher, None)
    recipe = {
        "1": {**watch_step(inputs, pattern="*.txt", expected_count=1), "output": 2},
        "2": {"queue": "plain.next"},
        "start": [[1, {}]],
    }

    start_recipe(tools.observer, recipe, environment={"ID": "plain"})

    [message] = announced.wait_for(1, tools.WAIT)
    assert message.body["payload"]["name"] == "only.txt"


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"pattern": "*.txt", "expected_files": ["a"]}, "exactly one of"),
        ({}, "exactly one of"),
        ({"pattern": "sub/*.txt"}, "without '/'"),
        ({"expected_files": ["../etc/passwd"]}, "plain file names"),
        ({"pattern": "*", "expected_count": 0}, "expected_count"),
        ({"pattern": "*", "timeout": -1}, "'timeout'"),
        ({"pattern": "*", "directory": "relative/dir"}, "absolute path"),
    ],
)
def test_unusable_parameters_are_rejected_with_the_reason(
    run_service: Any,
    tools: Any,
    inputs: Path,
    collect: Any,
    parameters: dict[str, Any],
    reason: str,
) -> None:
    dead = collect("dlq.filewatcher")
    run_service(FileWatcher, None)
    step = watch_step(inputs)
    step["parameters"].update(parameters)

    tools.start_step(step, {}, OUTPUTS)

    [message] = dead.wait_for(1, tools.WAIT)
    death = tools.death_of(message)
    assert death["reason"] == "rejected"
    assert reason in death["error"]
