"""JSONLines: buffered appends, acknowledged only once written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import Message
from zocalo_core.testing import MemoryBroker, MemoryTransport
from zocalo_services_contrib._jsonlines import JSONLines


class QuickJSONLines(JSONLines):
    """JSONLines flushing after 0.1 s, for the tests that are not about timing."""

    idle_timeout = 0.1


@pytest.fixture
def memory_broker() -> Iterator[MemoryBroker]:
    # Each failed write waits for a quiet second, so a low delivery limit keeps
    # the failure test short.
    broker = MemoryBroker(delivery_limit=2)
    yield broker
    broker.close(timeout=5.0)


@pytest.fixture
def output_root(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    root.mkdir()
    return root.resolve()


@pytest.fixture
def site(make_site: Any, output_root: Path) -> Any:
    return make_site({"output_roots": [str(output_root)]})


def write_step(output_file: str | Path, **parameters: Any) -> dict[str, Any]:
    return {
        "service": "JSONLines",
        "queue": "jsonlines",
        "parameters": {"output_file": str(output_file), **parameters},
    }


def send(tools: Any, step: dict[str, Any], payload: Any, recipe_id: str = "r") -> None:
    tools.start_step(step, payload, {}, recipe_id=recipe_id)


def lines_of(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def jsonlines_outstanding(broker: MemoryBroker) -> int:
    return int(broker.outstanding(lambda queued: queued.destination == "jsonlines"))


class CheckingTransport(MemoryTransport):
    """Records, at each ack, whether the output file already held that message."""

    def __init__(self, broker: MemoryBroker, path: Path) -> None:
        super().__init__(broker)
        self.path = path
        self.acked_before_written: list[Any] = []
        self.acks: list[str] = []
        self.nacks: list[str] = []
        self._lock = threading.Lock()

    def ack(self, message: Message, **options: Any) -> None:
        payload = message.body["payload"]
        if payload not in lines_of(self.path):
            self.acked_before_written.append(payload)
        super().ack(message, **options)
        with self._lock:
            self.acks.append(message.message_id)

    def nack(self, message: Message, **options: Any) -> None:
        super().nack(message, **options)
        with self._lock:
            self.nacks.append(message.message_id)


def test_a_full_buffer_of_100_is_written_at_once(
    run_service: Any, tools: Any, site: Any, output_root: Path, memory_broker: Any
) -> None:
    path = output_root / "results.jsonl"
    run_service(JSONLines, site)

    for number in range(150):
        send(tools, write_step(path), {"n": number})

    # The first 100 are written together, the other 50 only once the flow stops.
    assert tools.wait_until(lambda: len(lines_of(path)) >= 100)
    assert len(lines_of(path)) == 100
    assert tools.wait_until(lambda: len(lines_of(path)) == 150)
    assert lines_of(path) == [{"n": number} for number in range(150)]
    assert memory_broker.wait_idle(tools.WAIT)


def test_a_quiet_second_flushes_and_until_then_nothing_is_acked(
    run_service: Any, tools: Any, site: Any, output_root: Path, memory_broker: Any
) -> None:
    path = output_root / "quiet.jsonl"
    run_service(JSONLines, site)

    started = time.monotonic()
    for number in range(3):
        send(tools, write_step(path), {"n": number})
    time.sleep(0.5)

    assert not path.exists()
    assert jsonlines_outstanding(memory_broker) == 3
    assert tools.wait_until(lambda: len(lines_of(path)) == 3)
    assert time.monotonic() - started >= 0.9
    assert memory_broker.wait_idle(tools.WAIT)


def test_messages_are_acked_only_after_their_line_is_written(
    run_service: Any, tools: Any, site: Any, output_root: Path, memory_broker: Any
) -> None:
    path = output_root / "checked.jsonl"
    transport = CheckingTransport(memory_broker, path)
    run_service(QuickJSONLines, site, transport)

    for number in range(120):
        send(tools, write_step(path), {"n": number})

    assert tools.wait_until(lambda: len(transport.acks) == 120)
    assert transport.acked_before_written == []


def test_a_failed_write_nacks_its_group_and_never_acks_it_later(
    run_service: Any,
    tools: Any,
    site: Any,
    output_root: Path,
    memory_broker: Any,
    collect: Any,
) -> None:
    (output_root / "not-a-directory").write_text("a file where a folder should be")
    broken = output_root / "not-a-directory" / "out.jsonl"
    good = output_root / "good.jsonl"
    transport = CheckingTransport(memory_broker, broken)
    running = run_service(QuickJSONLines, site, transport)
    dead = collect("dlq.jsonlines")

    send(tools, write_step(broken), {"n": "lost"})

    [dead_letter] = dead.wait_for(1, tools.WAIT)
    death = tools.death_of(dead_letter)
    assert death["attempts"] == memory_broker.delivery_limit
    limit = memory_broker.delivery_limit
    assert tools.wait_until(lambda: len(transport.nacks) == limit)
    assert transport.acks == []
    send(tools, write_step(good), {"n": "kept"})
    assert tools.wait_until(lambda: lines_of(good) == [{"n": "kept"}])
    assert tools.wait_until(lambda: len(transport.acks) == 1)
    assert running.thread.is_alive()


@pytest.mark.parametrize(
    "output_file",
    ["/etc/zocalo-test.jsonl", "{root}/../escape.jsonl", "{root}/link/escape.jsonl"],
)
def test_a_file_outside_the_output_roots_is_rejected(
    run_service: Any,
    tools: Any,
    site: Any,
    output_root: Path,
    tmp_path: Path,
    collect: Any,
    output_file: str,
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (output_root / "link").symlink_to(tmp_path / "elsewhere")
    dead = collect("dlq.jsonlines")
    run_service(QuickJSONLines, site)

    send(tools, write_step(output_file.format(root=output_root)), {"n": 1})

    [message] = dead.wait_for(1, tools.WAIT)
    assert "outside the `output_roots`" in tools.death_of(message)["error"]
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert not (tmp_path / "escape.jsonl").exists()


@pytest.mark.parametrize("with_site_file", [True, False])
def test_without_a_runner_block_nothing_is_written(
    run_service: Any,
    tools: Any,
    make_site: Any,
    output_root: Path,
    collect: Any,
    with_site_file: bool,
) -> None:
    dead = collect("dlq.jsonlines")
    run_service(QuickJSONLines, make_site(None) if with_site_file else None)

    send(tools, write_step(output_root / "x.jsonl"), {"n": 1})

    [message] = dead.wait_for(1, tools.WAIT)
    assert "add a block with `plugin: runner`" in tools.death_of(message)["error"]
    assert not (output_root / "x.jsonl").exists()


def test_a_step_without_a_file_is_rejected(
    run_service: Any, tools: Any, site: Any, collect: Any
) -> None:
    dead = collect("dlq.jsonlines")
    run_service(QuickJSONLines, site)
    step = write_step("")

    send(tools, step, {"n": 1})

    [message] = dead.wait_for(1, tools.WAIT)
    assert "'output_file'" in tools.death_of(message)["error"]


def test_include_then_exclude_select_the_keys(
    run_service: Any, tools: Any, site: Any, output_root: Path
) -> None:
    path = output_root / "selected.jsonl"
    run_service(QuickJSONLines, site)
    step = write_step(path, include=["a", "b", "missing"], exclude=["b"])

    send(tools, step, {"a": 1, "b": 2, "c": 3})
    send(tools, write_step(path, exclude=["c"]), {"a": 1, "b": 2, "c": 3})

    assert tools.wait_until(lambda: len(lines_of(path)) == 2)
    assert lines_of(path) == [{"a": 1}, {"a": 1, "b": 2}]


def test_a_relative_file_lies_under_the_first_root_with_its_folders_made(
    run_service: Any, tools: Any, site: Any, output_root: Path
) -> None:
    run_service(QuickJSONLines, site)

    send(tools, write_step("recipes/recipe-7.jsonl"), {"n": 7})

    path = output_root / "recipes" / "recipe-7.jsonl"
    assert tools.wait_until(lambda: lines_of(path) == [{"n": 7}])


def test_the_reference_parameter_name_output_filename_works(
    run_service: Any, tools: Any, site: Any, output_root: Path
) -> None:
    run_service(QuickJSONLines, site)
    step = write_step("ignored")
    step["parameters"] = {"output_filename": str(output_root / "old.jsonl")}

    send(tools, step, {"n": 1})

    assert tools.wait_until(lambda: lines_of(output_root / "old.jsonl") == [{"n": 1}])


def test_messages_buffered_at_a_stop_are_written_at_the_stop_and_only_once(
    run_service: Any, tools: Any, site: Any, output_root: Path, memory_broker: Any
) -> None:
    path = output_root / "handover.jsonl"
    first = run_service(JSONLines, site)
    for number in range(3):
        send(tools, write_step(path), {"n": number})
    assert tools.wait_until(lambda: jsonlines_outstanding(memory_broker) == 3)
    # Delivered is not yet handled: wait until the service itself holds all three.
    assert tools.wait_until(lambda: getattr(first.runner.service, "_count", 0) == 3)

    first.stop()
    assert sorted(item["n"] for item in lines_of(path)) == [0, 1, 2]
    assert memory_broker.wait_idle(tools.WAIT)
    run_service(QuickJSONLines, site)

    send(tools, write_step(path), {"n": 3})
    assert tools.wait_until(lambda: len(lines_of(path)) >= 4)
    assert memory_broker.wait_idle(tools.WAIT)
    assert sorted(item["n"] for item in lines_of(path)) == [0, 1, 2, 3]
