"""The Dispatcher service on the memory transport, through the public API."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import (
    DispatcherFilter,
    ReadinessCheck,
    TransportError,
    start_recipe,
)
from zocalo_core.testing import MemoryBroker, MemoryTransport
from zocalo_core.transport import Capability, OutgoingMessage, Transaction
from zocalo_services_contrib._dispatcher import DISPATCHER_SERVICE, Dispatcher

WAIT = 10.0
GOOD_REQUEST = {"recipes": ["first"], "parameters": {"guid": "good-1"}}


def errors_mentioning(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR and text in record.getMessage()
    ]


def test_the_service_record_names_the_dispatcher() -> None:
    assert DISPATCHER_SERVICE.name == "Dispatcher"
    assert DISPATCHER_SERVICE.service_class is Dispatcher
    assert DISPATCHER_SERVICE.summary


def test_a_named_recipe_is_started_with_its_parameters_and_id(
    run_dispatcher: Any, collect: Any, send_request: Any, memory_broker: MemoryBroker
) -> None:
    first = collect("q.first")
    run_dispatcher()

    send_request(
        {"recipes": ["first"], "parameters": {"guid": "id-42", "ispyb_dcid": 42}},
        headers={"zocalo.go.user": "someone"},
    )

    [message] = first.wait_for(1, WAIT)
    assert message.headers["workflows-recipe"] is True
    assert message.body["environment"] == {"ID": "id-42"}
    assert message.body["payload"] == {"from": "first"}
    assert message.body["recipe-pointer"] == 1
    assert message.body["recipe"]["1"]["parameters"] == {"id": "id-42", "dcid": "42"}
    # The request was acknowledged, and nothing was dead-lettered.
    assert memory_broker.wait_idle(WAIT)
    assert memory_broker.outstanding(include_dead_letters=True) == 0


def test_a_request_without_guid_starts_with_a_new_uuid4(
    run_dispatcher: Any, collect: Any, send_request: Any
) -> None:
    first = collect("q.first")
    run_dispatcher()

    send_request({"recipes": ["first"]})

    [message] = first.wait_for(1, WAIT)
    recipe_id = message.body["environment"]["ID"]
    assert uuid.UUID(recipe_id).version == 4
    assert message.body["recipe"]["1"]["parameters"]["id"] == recipe_id


def test_custom_and_named_recipes_are_started_merged_in_order(
    run_dispatcher: Any, collect: Any, send_request: Any
) -> None:
    custom_queue, second, first = (
        collect("q.custom"),
        collect("q.second"),
        collect("q.first"),
    )
    run_dispatcher()
    custom = {"1": {"queue": "q.custom"}, "start": [[1, "custom"]]}

    send_request({"custom_recipe": custom, "recipes": ["second", "first"]})

    [to_custom] = custom_queue.wait_for(1, WAIT)
    [to_second] = second.wait_for(1, WAIT)
    [to_first] = first.wait_for(1, WAIT)
    assert to_custom.body["recipe-pointer"] == 1
    assert to_second.body["recipe-pointer"] == 2
    assert to_first.body["recipe-pointer"] == 4
    assert to_custom.body["recipe"] == to_first.body["recipe"]


def test_a_recipe_step_can_chain_a_new_recipe(
    run_dispatcher: Any, collect: Any, observer: MemoryTransport
) -> None:
    first = collect("q.first")
    run_dispatcher()
    request = {"recipes": ["first"], "parameters": {"guid": "child"}}
    parent = {"1": {"queue": "processing_recipe"}, "start": [[1, request]]}

    start_recipe(observer, parent, environment={"ID": "parent"})

    [message] = first.wait_for(1, WAIT)
    assert message.body["environment"] == {"ID": "child"}
    assert message.body["recipe"]["1"]["parameters"]["id"] == "child"


def rejected_cases(site_dir: Path, tmp_path: Path) -> dict[str, Any]:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"1": {"queue": "q.out"}, "start": [[1, {}]]}))
    (site_dir / "recipes" / "escape.json").symlink_to(outside)
    return {
        "not a dict": (["first"], "must be a JSON object"),
        "no recipe": ({"parameters": {"guid": "x"}}, "names no recipe"),
        "parent folder": ({"recipes": ["../x"]}, "not allowed"),
        "absolute": ({"recipes": ["/etc/passwd"]}, "not allowed"),
        "symlink out": ({"recipes": ["escape"]}, "leads outside the recipe"),
        "bad custom": ({"custom_recipe": {"1": {}}}, "custom recipe is invalid"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not a dict",
        "no recipe",
        "parent folder",
        "absolute",
        "symlink out",
        "bad custom",
    ],
)
def test_a_request_that_cannot_work_is_rejected_and_the_dispatcher_goes_on(
    case: str,
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    site_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body, reason = rejected_cases(site_dir, tmp_path)[case]
    dead, first = collect("dlq.processing_recipe"), collect("q.first")
    running = run_dispatcher()

    send_request(body)
    send_request(GOOD_REQUEST)

    [dead_letter] = dead.wait_for(1, WAIT)
    [death] = dead_letter.headers["x-zocalo-deaths"]
    assert death["reason"] == "rejected"
    assert death["attempts"] == 1
    assert reason in death["error"]
    assert dead_letter.body == body
    assert errors_mentioning(caplog, reason)
    [started] = first.wait_for(1, WAIT)
    assert started.body["environment"] == {"ID": "good-1"}
    assert running.thread.is_alive()


def test_without_a_recipe_directory_a_named_recipe_is_rejected_saying_how_to_fix_it(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    make_site: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead, custom_queue = collect("dlq.processing_recipe"), collect("q.custom")
    run_dispatcher(site=make_site(**{"zocalo.recipe_directory": None}))
    custom = {"1": {"queue": "q.custom"}, "start": [[1, "custom"]]}

    send_request({"recipes": ["first"]})
    send_request({"custom_recipe": custom})

    [dead_letter] = dead.wait_for(1, WAIT)
    error = dead_letter.headers["x-zocalo-deaths"][0]["error"]
    assert "no recipe directory is configured" in error
    assert "zocalo.recipe_directory" in error
    assert errors_mentioning(caplog, "no recipe directory is configured")
    custom_queue.wait_for(1, WAIT)


def test_a_malformed_recipe_message_is_rejected(
    run_dispatcher: Any, collect: Any, send_request: Any
) -> None:
    dead = collect("dlq.processing_recipe")
    run_dispatcher()

    send_request({"recipes": ["first"]}, headers={"workflows-recipe": True})

    [dead_letter] = dead.wait_for(1, WAIT)
    assert (
        "malformed recipe message" in dead_letter.headers["x-zocalo-deaths"][0]["error"]
    )


def test_a_filter_can_change_the_parameters(
    run_dispatcher: Any, collect: Any, send_request: Any, registry: Any
) -> None:
    def look_up_dcid(message: dict[str, Any], parameters: dict[str, Any]) -> Any:
        return message, {**parameters, "ispyb_dcid": 9876}

    first = collect("q.first")
    filters = [DispatcherFilter("ispyb", look_up_dcid, "finds the dcid")]
    run_dispatcher(registry=registry(filters=filters))

    send_request({"recipes": ["first"]})

    [message] = first.wait_for(1, WAIT)
    assert message.body["recipe"]["1"]["parameters"]["dcid"] == "9876"


def test_a_filter_that_raises_returns_the_request_for_another_try(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    registry: Any,
    caplog: pytest.LogCaptureFixture,
    memory_broker: MemoryBroker,
) -> None:
    calls: list[int] = []

    def flaky(message: dict[str, Any], parameters: dict[str, Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database is down")
        return message, parameters

    first, dead = collect("q.first"), collect("dlq.processing_recipe")
    run_dispatcher(registry=registry(filters=[DispatcherFilter("db", flaky, "")]))

    send_request(GOOD_REQUEST)

    first.wait_for(1, WAIT)
    assert len(calls) == 2
    assert memory_broker.wait_idle(WAIT)
    assert dead.messages == []
    [logged] = [
        text for text in errors_mentioning(caplog, "'db'") if "database is down" in text
    ]
    assert "back to the queue" in logged


def test_a_request_waits_until_it_is_ready(
    run_dispatcher: Any, collect: Any, send_request: Any, registry: Any
) -> None:
    answers = [False, False, True]
    seen: list[dict[str, Any]] = []

    def files_complete(message: dict[str, Any], parameters: dict[str, Any]) -> bool:
        seen.append(parameters)
        return answers[len(seen) - 1]

    first = collect("q.first")
    checks = [ReadinessCheck("files", files_complete, "waits for files")]
    run_dispatcher(registry=registry(checks=checks))
    # Text values, as `zocalo go -s dispatcher_delay=0.2` sends them.
    parameters = {"guid": "waits", "dispatcher_delay": "0.2", "dispatcher_timeout": "5"}
    sent = time.monotonic()

    send_request({"recipes": ["first"], "parameters": parameters})

    [message] = first.wait_for(1, WAIT)
    assert time.monotonic() - sent >= 0.35
    assert len(seen) == 3
    assert message.body["environment"] == {"ID": "waits"}
    assert "dispatcher_expiration" not in seen[0]
    assert seen[1]["dispatcher_expiration"] == seen[2]["dispatcher_expiration"]


def test_a_readiness_check_that_raises_returns_the_request_for_another_try(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    registry: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def flaky(message: dict[str, Any], parameters: dict[str, Any]) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database is down")
        return True

    first = collect("q.first")
    run_dispatcher(registry=registry(checks=[ReadinessCheck("db", flaky, "")]))

    send_request(GOOD_REQUEST)

    first.wait_for(1, WAIT)
    assert len(calls) == 2
    assert errors_mentioning(caplog, "readiness check 'db' failed")


def test_a_request_with_a_wait_that_is_not_seconds_is_rejected(
    run_dispatcher: Any, collect: Any, send_request: Any, registry: Any
) -> None:
    dead = collect("dlq.processing_recipe")
    checks = [ReadinessCheck("never", never_ready, "")]
    run_dispatcher(registry=registry(checks=checks))

    send_request({"recipes": ["first"], "parameters": {"dispatcher_timeout": "soon"}})

    [dead_letter] = dead.wait_for(1, WAIT)
    error = dead_letter.headers["x-zocalo-deaths"][0]["error"]
    assert "'dispatcher_timeout' must be seconds" in error


def never_ready(message: dict[str, Any], parameters: dict[str, Any]) -> bool:
    return False


def test_a_request_never_ready_goes_to_its_error_queue_at_expiry(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    registry: Any,
    memory_broker: MemoryBroker,
) -> None:
    errors, dead = collect("q.errors"), collect("dlq.processing_recipe")
    checks = [ReadinessCheck("never", never_ready, "")]
    run_dispatcher(registry=registry(checks=checks))
    parameters = {
        "guid": "late",
        "dispatcher_delay": 0.2,
        "dispatcher_timeout": 1,
        "dispatcher_error_queue": "q.errors",
    }
    sent = time.monotonic()

    send_request({"recipes": ["first"], "parameters": parameters})

    [message] = errors.wait_for(1, WAIT)
    assert 0.9 <= time.monotonic() - sent < 3
    assert message.body["recipes"] == ["first"]
    assert message.body["parameters"]["guid"] == "late"
    assert memory_broker.wait_idle(WAIT)
    assert dead.messages == []


def test_a_request_never_ready_without_parameters_is_rejected_when_its_wait_ends(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    registry: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = collect("dlq.processing_recipe")
    checks = [ReadinessCheck("never", never_ready, "")]
    run_dispatcher(
        registry=registry(checks=checks), default_timeout=0.6, default_delay=0.2
    )
    sent = time.monotonic()

    send_request({"recipes": ["first"]})

    [dead_letter] = dead.wait_for(1, WAIT)
    assert time.monotonic() - sent < 3
    error = dead_letter.headers["x-zocalo-deaths"][0]["error"]
    assert "still not ready" in error
    assert "'never'" in error
    assert "dispatcher_expiration" in dead_letter.body["parameters"]
    assert errors_mentioning(caplog, "still not ready")


class NoDelayTransport(MemoryTransport):
    capabilities = frozenset(Capability) - {Capability.DELAY}


def test_a_transport_that_cannot_delay_rejects_requests_that_are_not_ready(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    registry: Any,
    memory_broker: MemoryBroker,
) -> None:
    dead = collect("dlq.processing_recipe")
    checks = [ReadinessCheck("never", never_ready, "")]
    run_dispatcher(
        registry=registry(checks=checks), transport=NoDelayTransport(memory_broker)
    )

    send_request(GOOD_REQUEST)

    [dead_letter] = dead.wait_for(1, WAIT)
    assert "cannot delay" in dead_letter.headers["x-zocalo-deaths"][0]["error"]


class FailingOnce(MemoryTransport):
    """Fails the first send to `q.fails`, as a broker refusing it would."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.attempts = 0

    def _send(self, outgoing: OutgoingMessage, transaction: Transaction | None) -> None:
        if outgoing.destination == "q.fails":
            self.attempts += 1
            if self.attempts == 1:
                raise TransportError("the broker refused the message")
        super()._send(outgoing, transaction)


def test_a_failing_start_send_does_not_ack_and_sends_nothing(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    memory_broker: MemoryBroker,
) -> None:
    before, fails, first = collect("q.before"), collect("q.fails"), collect("q.first")
    transport = FailingOnce(memory_broker)
    run_dispatcher(transport=transport)
    custom = {
        "1": {"queue": "q.before"},
        "2": {"queue": "q.fails"},
        "start": [[1, "sent first"], [2, "refused once"]],
    }

    send_request({"custom_recipe": custom, "recipes": ["first"]})

    fails.wait_for(1, WAIT)
    assert memory_broker.wait_idle(WAIT)
    assert transport.attempts == 2, "the request was not delivered again"
    assert len(before.messages) == 1, "the aborted attempt's send was delivered"
    assert len(first.messages) == 1


def test_the_logbook_gets_an_entry_per_started_recipe(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    make_site: Callable[..., Any],
    site_dir: Path,
    memory_broker: MemoryBroker,
) -> None:
    first = collect("q.first")
    run_dispatcher(site=make_site(**{"zocalo.dispatcher.logbook_location": "book"}))

    send_request({"recipes": ["first"], "parameters": {"guid": "abc-123"}})
    send_request({"recipes": ["first"], "parameters": {"guid": "abc-123"}})

    first.wait_for(2, WAIT)
    assert memory_broker.wait_idle(WAIT)
    folder = site_dir / "book" / time.strftime("%Y-%m") / "ab"
    assert sorted(path.name for path in folder.iterdir()) == ["c-123", "c-123.1"]
    text = (folder / "c-123").read_text()
    for title in (
        "Incoming message header:",
        "Incoming message body:",
        "Parsed message body:",
        "Recipe object:",
    ):
        assert title in text
    assert '"q.first"' in text
