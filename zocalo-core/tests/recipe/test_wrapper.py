from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from zocalo_core._errors import RecipeError
from zocalo_core._recipe import RECIPE_HEADER, Recipe, RecipeWrapper, start_recipe

# The recording transport and messages come from this folder's conftest.py.
RecordingTransport = Any

RECIPE = {
    "1": {"queue": "first", "output": [2, 3], "error": 6, "transport-delay": 7},
    "2": {"queue": "second", "output": {"done": 4, "more": [4, 5]}},
    "3": {"topic": "third"},
    "4": {"queue": "fourth", "topic": "fourth.topic", "transport-delay": 2.5},
    "5": {"queue": "fifth"},
    "6": {"queue": "errors"},
    "7": {"queue": "recipe-errors"},
    "start": [[1, {"start": "one"}], [5, {"start": "five"}]],
    "error": 7,
}


@dataclass
class FakeMessage:
    """A received message with the attributes the wrapper reads."""

    body: Any
    headers: dict[str, Any] = field(default_factory=lambda: {RECIPE_HEADER: True})


def as_received(body: dict[str, Any]) -> FakeMessage:
    """The message a service gets for `body` after a trip through a broker."""
    return FakeMessage(json.loads(json.dumps(body)))


def message_at(
    pointer: int, path: list[int] | None = None, **extra: object
) -> FakeMessage:
    body = {
        "environment": {"ID": "recipe-42", "source": "test"},
        "payload": {"received": True},
        "recipe": RECIPE,
        "recipe-path": path if path is not None else [],
        "recipe-pointer": pointer,
        **extra,
    }
    return as_received(body)


def wrapper_at(
    transport: RecordingTransport, pointer: int, path: list[int] | None = None
) -> RecipeWrapper:
    return RecipeWrapper(message=message_at(pointer, path), transport=transport)


def test_attributes_from_a_received_message(transport: RecordingTransport) -> None:
    wrapper = wrapper_at(transport, 2, [1])

    assert wrapper.recipe == RECIPE
    assert wrapper.recipe_pointer == 2
    assert wrapper.recipe_step == {
        "queue": "second",
        "output": {"done": [4], "more": [4, 5]},
    }
    assert wrapper.recipe_path == [1]
    assert wrapper.environment == {"ID": "recipe-42", "source": "test"}
    assert wrapper.payload == {"received": True}
    assert wrapper.recipe_id == "recipe-42"


def test_changing_the_step_does_not_change_what_is_sent(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 1)

    assert wrapper.recipe_step is not None
    wrapper.recipe_step["output"] = [5]
    wrapper.send({})

    assert transport.destinations() == [("send", "second"), ("broadcast", "third")]
    assert transport.calls[0].body["recipe"]["1"]["output"] == [2, 3]


def test_send_goes_to_every_unnamed_output(transport: RecordingTransport) -> None:
    wrapper_at(transport, 1).send({"result": 1})

    assert transport.destinations() == [("send", "second"), ("broadcast", "third")]
    first, second = transport.calls
    assert first.body == {
        "environment": {"ID": "recipe-42", "source": "test"},
        "payload": {"result": 1},
        "recipe": Recipe(RECIPE).to_dict(),
        "recipe-path": [1],
        "recipe-pointer": 2,
    }
    assert second.body["recipe-pointer"] == 3
    assert first.headers == {RECIPE_HEADER: True}


def test_the_envelope_keeps_the_shape_of_the_existing_system(
    transport: RecordingTransport,
) -> None:
    wrapper_at(transport, 1, [0]).send("text payload")

    body = transport.calls[0].body
    assert sorted(body) == [
        "environment",
        "payload",
        "recipe",
        "recipe-path",
        "recipe-pointer",
    ]
    assert body["recipe"]["start"] == [[1, {"start": "one"}], [5, {"start": "five"}]]
    assert body["recipe"]["error"] == [7]
    assert body["recipe-path"] == [0, 1]
    received = RecipeWrapper(message=as_received(body), transport=transport)
    assert received.recipe_pointer == 2
    assert received.payload == "text payload"


def test_each_destination_gets_its_own_body_and_headers(
    transport: RecordingTransport,
) -> None:
    headers = {"priority-hint": "high"}
    payload = {"items": [1]}

    wrapper_at(transport, 2).send_to("more", payload, headers=headers)

    first, second, _ = transport.calls
    assert first.headers == {"priority-hint": "high", RECIPE_HEADER: True}
    assert first.headers is not second.headers
    assert first.body is not second.body
    assert first.body["payload"] is not second.body["payload"]
    assert first.body["environment"] is not second.body["environment"]
    assert headers == {"priority-hint": "high"}
    first.body["payload"]["items"].append(2)
    assert payload == {"items": [1]}


def test_transport_options_are_passed_on(transport: RecordingTransport) -> None:
    transaction = object()

    wrapper_at(transport, 1).send(
        {}, delay=3, expiration=60, priority=5, transaction=transaction
    )

    queue_call, topic_call = transport.calls
    assert (queue_call.delay, queue_call.expiration, queue_call.priority) == (3, 60, 5)
    assert queue_call.transaction is transaction
    assert (topic_call.delay, topic_call.expiration) == (3, 60)
    assert topic_call.transaction is transaction


def test_the_wrappers_transaction_is_the_default(transport: RecordingTransport) -> None:
    default, explicit = object(), object()
    wrapper = RecipeWrapper(
        message=message_at(1), transport=transport, transaction=default
    )

    wrapper.send({})
    wrapper.send({}, transaction=explicit)

    assert [call.transaction for call in transport.calls] == [
        default,
        default,
        explicit,
        explicit,
    ]


def test_node_transport_delay_is_the_default_and_an_explicit_delay_wins(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 2)

    wrapper.send_to("done", {})
    wrapper.send_to("done", {}, delay=0)

    assert transport.destinations() == [
        ("send", "fourth"),
        ("broadcast", "fourth.topic"),
        ("send", "fourth"),
        ("broadcast", "fourth.topic"),
    ]
    assert [call.delay for call in transport.calls] == [2.5, 2.5, 0, 0]


def test_a_node_with_queue_and_topic_gets_both(transport: RecordingTransport) -> None:
    wrapper_at(transport, 2).send_to("done", {"x": 1})

    queue_call, topic_call = transport.calls
    assert (queue_call.method, queue_call.destination) == ("send", "fourth")
    assert (topic_call.method, topic_call.destination) == ("broadcast", "fourth.topic")
    assert queue_call.body == topic_call.body


def test_a_nodes_exchange_routes_its_queue_sends_only(
    transport: RecordingTransport,
) -> None:
    recipe = {
        "1": {"queue": "first", "output": 2},
        "2": {"queue": "second", "topic": "second.topic", "exchange": "site"},
        "start": [[1, {}]],
    }
    message = message_at(1, recipe=recipe)
    RecipeWrapper(message=message, transport=transport).send({"x": 1})

    queue_call, topic_call = transport.calls
    assert (queue_call.destination, queue_call.exchange) == ("second", "site")
    assert (topic_call.method, topic_call.exchange) == ("broadcast", None)


def test_send_to_a_named_output(transport: RecordingTransport) -> None:
    wrapper_at(transport, 2, [1]).send_to("more", {})

    assert transport.destinations() == [
        ("send", "fourth"),
        ("broadcast", "fourth.topic"),
        ("send", "fifth"),
    ]
    assert {tuple(call.body["recipe-path"]) for call in transport.calls} == {(1, 2)}


def test_send_to_a_missing_output_is_logged_with_step_and_name(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper_at(transport, 2).send_to("nonexistent", {})

    assert transport.calls == []
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "step 2 (queue 'second')" in record.getMessage()
    assert "'nonexistent'" in record.getMessage()
    assert "'done', 'more'" in record.getMessage()


def test_send_to_on_a_step_without_named_outputs_is_logged(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper_at(transport, 3).send_to("done", {})

    assert transport.calls == []
    assert "step 3 (topic 'third') has no output named 'done'" in caplog.text


def test_send_with_named_outputs_uses_the_default_channel(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 2)
    wrapper.set_default_channel("more")

    wrapper.send({})

    assert transport.destinations() == [
        ("send", "fourth"),
        ("broadcast", "fourth.topic"),
        ("send", "fifth"),
    ]


def test_send_with_named_outputs_and_no_default_channel_is_logged(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper_at(transport, 2).send({})

    assert transport.calls == []
    assert "step 2 (queue 'second') has only named outputs" in caplog.text


def test_send_to_the_default_channel_on_unnamed_outputs(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 1)
    wrapper.set_default_channel("main")

    wrapper.send_to("main", {})

    assert transport.destinations() == [("send", "second"), ("broadcast", "third")]


def test_send_on_a_step_without_outputs_sends_nothing(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper_at(transport, 5).send({})

    assert transport.calls == []
    assert caplog.records == []


def test_send_error_goes_to_the_steps_error_links(
    transport: RecordingTransport,
) -> None:
    wrapper_at(transport, 1).send_error({"failed": True})

    assert transport.destinations() == [("send", "errors")]
    call = transport.calls[0]
    assert call.body["recipe-pointer"] == 6
    assert call.body["recipe-path"] == [1]
    assert call.body["payload"] == {"failed": True}
    assert call.delay is None


def test_send_error_falls_back_to_the_recipes_error_nodes(
    transport: RecordingTransport,
) -> None:
    wrapper_at(transport, 2).send_error({})

    assert transport.destinations() == [("send", "recipe-errors")]


def test_send_error_with_no_error_links_anywhere_is_logged(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = {"1": {"queue": "a"}, "start": [[1, {}]]}
    body = {"recipe": recipe, "recipe-pointer": 1, "payload": None}
    wrapper = RecipeWrapper(message=as_received(body), transport=transport)

    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper.send_error({})

    assert transport.calls == []
    assert "step 1 (queue 'a') has no error links" in caplog.text


def test_checkpoint_sends_to_the_same_step_without_extending_the_path(
    transport: RecordingTransport,
) -> None:
    wrapper_at(transport, 2, [1]).checkpoint({"progress": 50})

    (call,) = transport.calls
    assert (call.method, call.destination) == ("send", "second")
    assert call.body["recipe-pointer"] == 2
    assert call.body["recipe-path"] == [1]
    assert call.body["payload"] == {"progress": 50}
    assert call.delay is None


def test_checkpoint_delay_defaults_to_the_node_and_explicit_wins(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 1)

    wrapper.checkpoint({})
    wrapper.checkpoint({}, delay=30)

    assert [call.delay for call in transport.calls] == [7, 30]


def test_checkpoint_on_a_topic_node_broadcasts(transport: RecordingTransport) -> None:
    wrapper_at(transport, 3).checkpoint({}, delay=0)

    assert transport.destinations() == [("broadcast", "third")]
    assert transport.calls[0].delay == 0


def test_the_environment_travels_with_every_message(
    transport: RecordingTransport,
) -> None:
    wrapper = wrapper_at(transport, 1)
    wrapper.environment["added"] = "by the service"

    wrapper.send({})

    for call in transport.calls:
        assert call.body["environment"] == {
            "ID": "recipe-42",
            "source": "test",
            "added": "by the service",
        }


def test_start_recipe_sends_each_start_payload(transport: RecordingTransport) -> None:
    recipe = copy.deepcopy(RECIPE)
    environment = {"ID": "new-recipe"}

    start_recipe(transport, recipe, environment=environment, transaction="txn")

    assert transport.destinations() == [("send", "first"), ("send", "fifth")]
    first, fifth = transport.calls
    assert first.body == {
        "environment": {"ID": "new-recipe"},
        "payload": {"start": "one"},
        "recipe": Recipe(RECIPE).to_dict(),
        "recipe-path": [],
        "recipe-pointer": 1,
    }
    assert fifth.body["payload"] == {"start": "five"}
    assert first.delay == 7
    assert fifth.delay is None
    assert {call.transaction for call in transport.calls} == {"txn"}
    assert first.headers == {RECIPE_HEADER: True}
    assert recipe == RECIPE
    assert environment == {"ID": "new-recipe"}


def test_start_recipe_invents_no_recipe_id(transport: RecordingTransport) -> None:
    start_recipe(transport, Recipe(RECIPE))

    assert [call.body["environment"] for call in transport.calls] == [{}, {}]


def test_start_recipe_refuses_an_invalid_recipe(transport: RecordingTransport) -> None:
    with pytest.raises(RecipeError, match="node 1: output links to node 9"):
        start_recipe(transport, {"1": {"queue": "a", "output": 9}, "start": [[1, {}]]})

    assert transport.calls == []


def test_start_on_a_received_message_is_refused(transport: RecordingTransport) -> None:
    with pytest.raises(RecipeError, match="already running"):
        wrapper_at(transport, 1).start()


@pytest.mark.parametrize("action", ["send", "send_error", "checkpoint"])
def test_step_methods_need_a_received_message(
    transport: RecordingTransport, action: str
) -> None:
    wrapper = RecipeWrapper(recipe=RECIPE, transport=transport)

    with pytest.raises(RecipeError, match=f"{action}\\(\\) needs a wrapper built from"):
        getattr(wrapper, action)({})


def test_a_wrapper_needs_exactly_one_source(transport: RecordingTransport) -> None:
    with pytest.raises(RecipeError, match="exactly one"):
        RecipeWrapper(transport=transport)
    with pytest.raises(RecipeError, match="exactly one"):
        RecipeWrapper(transport=transport, recipe=RECIPE, message=message_at(1))


def test_a_link_to_a_missing_node_sends_nothing_at_all(
    transport: RecordingTransport,
) -> None:
    recipe = {"1": {"queue": "a", "output": [2, 9]}, "2": {"queue": "b"}}
    body = {"recipe": {**recipe, "start": [[1, {}]]}, "recipe-pointer": 1}
    wrapper = RecipeWrapper(message=as_received(body), transport=transport)

    with pytest.raises(RecipeError, match="step 1 \\(queue 'a'\\) links to node 9"):
        wrapper.send({})

    assert transport.calls == []


def test_a_node_without_queue_or_topic_is_logged(
    transport: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = {"1": {"queue": "a", "output": 2}, "2": {"service": "nothing"}}
    body = {"recipe": {**recipe, "start": [[1, {}]]}, "recipe-pointer": 1}
    wrapper = RecipeWrapper(message=as_received(body), transport=transport)

    with caplog.at_level(logging.WARNING, logger="zocalo_core._recipe"):
        wrapper.send({})

    assert transport.calls == []
    assert "node 2 has neither a queue nor a topic" in caplog.text


def test_a_given_environment_replaces_the_messages(
    transport: RecordingTransport,
) -> None:
    wrapper = RecipeWrapper(
        message=message_at(1), transport=transport, environment={"ID": "other"}
    )

    assert wrapper.recipe_id == "other"


def test_a_wrapper_for_starting_has_no_step(transport: RecordingTransport) -> None:
    wrapper = RecipeWrapper(recipe=RECIPE, transport=transport, environment={"ID": 1})

    assert wrapper.recipe_step == {}
    assert wrapper.recipe_pointer is None
    assert wrapper.recipe_path == []
    assert wrapper.payload is None
    assert wrapper.recipe_id == 1
