"""Services on the memory transport, through the public API."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from zocalo_core import (
    Handling,
    Message,
    RecipeWrapper,
    RejectMessage,
    Service,
    Subscribe,
    start_recipe,
)
from zocalo_core.testing import MemoryBroker

RECIPE = {
    "1": {"service": "Doubler", "queue": "numbers", "output": 2},
    "2": {"queue": "doubled"},
    "start": [[1, 0]],
}


class Doubler(Service):
    name = "Doubler"
    subscriptions = [Subscribe("numbers", "on_number")]

    def on_number(self, rw: RecipeWrapper, message: Message) -> None:
        if rw.payload == "boom":
            raise ValueError("cannot double boom")
        if rw.payload == "malformed":
            raise RejectMessage("payload 'malformed' can never be doubled")
        rw.send(rw.payload * 2)


class SendThenFail(Service):
    name = "SendThenFail"
    subscriptions = [Subscribe("numbers", "on_number")]

    def on_number(self, rw: RecipeWrapper, message: Message) -> None:
        rw.send(rw.payload * 2)
        if message.delivery_attempt < 3:
            raise RuntimeError("failing after the send")


def start_with(observer: Any, payload: Any, recipe_id: str = "recipe-1") -> None:
    recipe = {**RECIPE, "start": [[1, payload]]}
    start_recipe(observer, recipe, environment={"ID": recipe_id})


def test_results_go_to_the_next_step(
    run_service: Any, observer: Any, collect: Any
) -> None:
    doubled = collect("doubled")
    run_service(Doubler)

    start_with(observer, 21)

    [message] = doubled.wait_for(1, 10)
    assert message.body["payload"] == 42
    assert message.body["recipe-pointer"] == 2
    assert message.body["environment"] == {"ID": "recipe-1"}
    assert message.headers["workflows-recipe"] is True


def test_a_handler_that_raises_nacks_and_the_service_goes_on(
    run_service: Any,
    observer: Any,
    collect: Any,
    memory_broker: MemoryBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    doubled = collect("doubled")
    dead = collect("dlq.numbers")
    running = run_service(Doubler)

    start_with(observer, 1, "first")
    start_with(observer, "boom", "second")
    start_with(observer, 3, "third")

    assert sorted(m.body["payload"] for m in doubled.wait_for(2, 10)) == [2, 6]
    [dead_letter] = dead.wait_for(1, 10)
    assert dead_letter.body["environment"]["ID"] == "second"
    deaths = dead_letter.headers["x-zocalo-deaths"]
    assert deaths[-1]["attempts"] == memory_broker.delivery_limit
    assert running.thread.is_alive()
    handler_failures = [
        record
        for record in caplog.records
        if record.levelno == logging.ERROR
        and getattr(record, "service", None) == "Doubler"
    ]
    assert len(handler_failures) == memory_broker.delivery_limit
    for record in handler_failures:
        assert record.recipe_ID == "second"  # type: ignore[attr-defined]
        assert record.queue == "numbers"  # type: ignore[attr-defined]
        assert "cannot double boom" in (record.exc_text or str(record.exc_info))


def test_sends_and_the_ack_commit_together(
    run_service: Any, observer: Any, collect: Any, memory_broker: MemoryBroker
) -> None:
    doubled = collect("doubled")
    run_service(SendThenFail)

    start_with(observer, 5)

    [message] = doubled.wait_for(1, 10)
    assert memory_broker.wait_idle(10, match=lambda m: m.destination == "numbers")
    assert message.body["payload"] == 10
    assert doubled.bodies == [message.body], "an aborted attempt's send was delivered"


def test_a_message_without_the_recipe_header_is_rejected_naming_the_queue(
    run_service: Any, observer: Any, collect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dead = collect("dlq.numbers")
    run_service(Doubler)

    observer.send("numbers", {"payload": 1})

    [dead_letter] = dead.wait_for(1, 10)
    [death] = dead_letter.headers["x-zocalo-deaths"]
    assert death["reason"] == "rejected"
    assert "'numbers'" in death["error"]
    assert "recipe header" in death["error"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'numbers'" in text and "recipe header" in text for text in errors)


def test_reject_message_dead_letters_at_once_with_the_reason(
    run_service: Any, observer: Any, collect: Any
) -> None:
    dead = collect("dlq.numbers")
    run_service(Doubler)

    start_with(observer, "malformed")

    [dead_letter] = dead.wait_for(1, 10)
    [death] = dead_letter.headers["x-zocalo-deaths"]
    assert death["attempts"] == 1
    assert death["error"] == "payload 'malformed' can never be doubled"


def test_a_malformed_recipe_envelope_is_rejected(
    run_service: Any, observer: Any, collect: Any
) -> None:
    dead = collect("dlq.numbers")
    run_service(Doubler)

    observer.send("numbers", {"payload": 1}, headers={"workflows-recipe": True})

    [dead_letter] = dead.wait_for(1, 10)
    assert (
        "malformed recipe message" in dead_letter.headers["x-zocalo-deaths"][0]["error"]
    )


class Batcher(Service):
    name = "Batcher"
    subscriptions = [
        Subscribe(
            "lines", "on_line", recipe=False, prefetch=10, handling=Handling.MANUAL
        )
    ]
    idle_timeout = 0.2

    def on_start(self) -> None:
        self.pending: list[Message] = []

    def on_line(self, message: Message) -> None:
        self.pending.append(message)

    def on_idle(self) -> None:
        if self.pending:
            self.send("batches", [m.body for m in self.pending])
            for message in self.pending:
                self.transport.ack(message)
            self.pending = []


def test_a_service_may_batch_and_ack_later(
    run_service: Any, observer: Any, collect: Any, memory_broker: MemoryBroker
) -> None:
    batches = collect("batches")
    run_service(Batcher)

    for number in range(5):
        observer.send("lines", number)

    [batch] = batches.wait_for(1, 10)
    assert batch.body == [0, 1, 2, 3, 4]
    assert memory_broker.wait_idle(5, match=lambda m: m.destination == "lines")


class AfterAck(Service):
    name = "AfterAck"
    subscriptions = [
        Subscribe("plain", "on_plain", recipe=False, handling=Handling.ACK_AFTER)
    ]

    def on_plain(self, message: Message) -> None:
        self.send("out", message.body + 1)


def test_plain_subscriptions_get_the_message_and_are_acked_after(
    run_service: Any, observer: Any, collect: Any, memory_broker: MemoryBroker
) -> None:
    out = collect("out")
    run_service(AfterAck)

    observer.send("plain", 41)

    assert out.wait_for(1, 10)[0].body == 42
    assert memory_broker.wait_idle(5, match=lambda m: m.destination == "plain")
