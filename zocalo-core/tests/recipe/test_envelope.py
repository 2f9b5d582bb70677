from __future__ import annotations

import pytest
from zocalo_core._errors import RecipeError
from zocalo_core._recipe import (
    RECIPE_HEADER,
    Recipe,
    RecipeEnvelope,
    build_envelope,
    is_recipe_message,
    parse_envelope,
    recipe_headers,
)

# A message body in the shape of reference section 5.5, as the existing system sends it.
OLD_SYSTEM_BODY = {
    "environment": {"ID": "5e3d0a4c-recipe-id"},
    "payload": {"file": "image_0001.cbf"},
    "recipe": {
        "1": {"queue": "filewatcher", "output": {"any": 2}},
        "2": {"queue": "runner", "output": 3},
        "3": {"queue": "jsonlines"},
        "start": [[1, {"pattern": "image_%04d.cbf"}]],
    },
    "recipe-path": [1],
    "recipe-pointer": 2,
}


def test_header_name() -> None:
    assert RECIPE_HEADER == "workflows-recipe"


@pytest.mark.parametrize("value", [True, "True", "true", 1])
def test_accepted_header_values(value: object) -> None:
    assert is_recipe_message({RECIPE_HEADER: value})


@pytest.mark.parametrize(
    "value", [False, "False", "false", 0, 2, "1", "yes", None, 1.0]
)
def test_refused_header_values(value: object) -> None:
    assert not is_recipe_message({RECIPE_HEADER: value})


def test_no_headers_is_not_a_recipe_message() -> None:
    assert not is_recipe_message(None)
    assert not is_recipe_message({})
    assert not is_recipe_message({"other": True})


def test_recipe_headers_copies_and_sets_the_flag() -> None:
    given = {"priority": 4}

    headers = recipe_headers(given)

    assert headers == {"priority": 4, RECIPE_HEADER: True}
    assert given == {"priority": 4}
    assert recipe_headers() == {RECIPE_HEADER: True}


def test_a_body_of_the_existing_system_parses() -> None:
    envelope = parse_envelope(OLD_SYSTEM_BODY)

    assert envelope.recipe == OLD_SYSTEM_BODY["recipe"]
    assert envelope.recipe_pointer == 2
    assert envelope.recipe_path == [1]
    assert envelope.environment == {"ID": "5e3d0a4c-recipe-id"}
    assert envelope.recipe_id == "5e3d0a4c-recipe-id"
    assert envelope.payload == {"file": "image_0001.cbf"}


def test_the_body_we_build_is_the_one_the_existing_system_sends() -> None:
    envelope = parse_envelope(OLD_SYSTEM_BODY)

    body = envelope.to_body()

    # Single links are sent as one-item lists, as the existing system sends them.
    normalised = {**OLD_SYSTEM_BODY, "recipe": Recipe(OLD_SYSTEM_BODY["recipe"])}
    assert body == normalised
    assert body["recipe"]["2"]["output"] == [3]
    assert list(body) == [
        "environment",
        "payload",
        "recipe",
        "recipe-path",
        "recipe-pointer",
    ]


def test_build_envelope_copies_everything() -> None:
    environment = {"ID": 1, "extra": {"a": [1]}}
    payload = {"list": [1]}
    path = [1]

    body = build_envelope(
        recipe=Recipe(OLD_SYSTEM_BODY["recipe"]),
        recipe_pointer=3,
        recipe_path=path,
        environment=environment,
        payload=payload,
    )
    body["environment"]["extra"]["a"].append(2)
    body["payload"]["list"].append(2)
    body["recipe-path"].append(3)

    assert environment == {"ID": 1, "extra": {"a": [1]}}
    assert payload == {"list": [1]}
    assert path == [1]


def test_parsing_does_not_change_the_body() -> None:
    body = {**OLD_SYSTEM_BODY, "recipe": dict(OLD_SYSTEM_BODY["recipe"])}
    envelope = parse_envelope(body)

    envelope.environment["ID"] = "changed"
    envelope.payload["file"] = "changed"

    assert body == OLD_SYSTEM_BODY


def test_missing_path_and_environment_default_to_empty() -> None:
    body = {"recipe": OLD_SYSTEM_BODY["recipe"], "recipe-pointer": 1}

    envelope = parse_envelope(body)

    assert envelope == RecipeEnvelope(Recipe(OLD_SYSTEM_BODY["recipe"]), 1)
    assert envelope.recipe_id is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("text", "must be a JSON object, not str"),
        ({"recipe-pointer": 1}, "lacks 'recipe'"),
        ({"recipe": {}}, "lacks 'recipe-pointer'"),
        ({"recipe": [], "recipe-pointer": 1}, "a recipe must be a JSON object"),
        (
            {**OLD_SYSTEM_BODY, "recipe-pointer": 9},
            r"points at node 9.*nodes: \[1, 2, 3\]",
        ),
        ({**OLD_SYSTEM_BODY, "recipe-pointer": "2"}, "points at node '2'"),
        ({"recipe": {"1": [], "start": []}, "recipe-pointer": 1}, "not a JSON object"),
        ({**OLD_SYSTEM_BODY, "recipe-path": "1"}, "'recipe-path' must be a list"),
        ({**OLD_SYSTEM_BODY, "environment": []}, "'environment' must be a JSON object"),
    ],
)
def test_malformed_bodies_are_recipe_errors(body: object, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_envelope(body)
