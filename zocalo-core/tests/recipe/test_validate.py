from __future__ import annotations

import pytest
from zocalo_core._errors import RecipeError
from zocalo_core._recipe import InvalidRecipeError, Recipe, RecipeProblem


def texts(source: object) -> list[str]:
    return [str(problem) for problem in Recipe(source).problems()]  # type: ignore[arg-type]


def valid() -> dict:
    return {
        "1": {"queue": "one", "output": {"done": 2}, "error": 3, "transport-delay": 5},
        "2": {"topic": "two", "output": [2]},
        "3": {"queue": "three"},
        "4": {"queue": "handler"},
        "start": [[1, {}]],
        "error": 4,
    }


def test_a_valid_recipe_has_no_problems() -> None:
    recipe = Recipe(valid())

    assert recipe.problems() == []
    recipe.validate()


def test_empty_recipe() -> None:
    assert texts({}) == [
        "recipe: is empty; a recipe needs a 'start' list and at least one node"
    ]


def test_start_missing() -> None:
    assert "start: is missing; add a list of [node, payload] pairs" in texts(
        {"1": {"queue": "a"}}
    )


def test_start_not_a_list() -> None:
    assert texts({"1": {"queue": "a"}, "start": 1})[0] == (
        "start: must be a list of [node, payload] pairs, got 1"
    )


def test_start_empty() -> None:
    assert "start: is empty; add at least one [node, payload] pair" in texts(
        {"1": {"queue": "a"}, "start": []}
    )


def test_start_entries_must_be_pairs() -> None:
    problems = texts({"1": {}, "start": [[1, {}], [1], [1, {}, 2], "x"]})

    assert problems == [
        "start: entry 1 must be a [node, payload] pair, got [1]",
        "start: entry 2 must be a [node, payload] pair, got [1, {}, 2]",
        "start: entry 3 must be a [node, payload] pair, got 'x'",
    ]


def test_start_must_not_point_at_start_or_a_missing_node() -> None:
    problems = texts({"1": {}, "start": [[1, {}], ["start", {}], [7, {}]]})

    assert problems == [
        "start: entry 1 links to 'start', which is not a node id",
        "start: entry 2 links to node 7, which does not exist",
    ]


def test_top_level_error_must_not_reference_start_or_error() -> None:
    problems = texts({"1": {}, "start": [[1, {}]], "error": ["start", "error"]})

    assert problems == [
        "error: links to 'start', which is not a node id",
        "error: links to 'error', which is not a node id",
    ]


def test_top_level_error_of_the_wrong_type() -> None:
    problems = texts({"1": {}, "start": [[1, {}]], "error": {"a": 1}})

    assert problems == ["error: must be a node id or a list of node ids, got an object"]


def test_top_level_error_links_must_exist() -> None:
    problems = texts({"1": {}, "start": [[1, {}]], "error": 9})

    assert problems == ["error: links to node 9, which does not exist"]


def test_other_keys_must_be_node_ids() -> None:
    problems = texts({"1": {}, "start": [[1, {}]], "x": {}, "1.5": {}})

    assert problems == [
        "key 'x': is not a node id; top-level keys must be node ids (integers, 0 or "
        "more), 'start' or 'error'",
        "key '1.5': is not a node id; top-level keys must be node ids (integers, 0 or "
        "more), 'start' or 'error'",
    ]


def test_node_body_must_be_an_object() -> None:
    problems = texts({"1": {"output": 2}, "2": ["queue"], "start": [[1, {}]]})

    assert problems == ["node 2: must be a JSON object (a dict), got a list"]


def test_output_links_must_exist_named_and_unnamed() -> None:
    problems = texts(
        {
            "1": {"output": {"done": 7, "fail": [2, 8]}},
            "2": {"output": [9], "error": 6},
            "start": [[1, {}]],
        }
    )

    assert problems == [
        "node 1: output 'done' links to node 7, which does not exist",
        "node 1: output 'fail' links to node 8, which does not exist",
        "node 2: output links to node 9, which does not exist",
        "node 2: error links to node 6, which does not exist",
    ]


def test_nested_named_outputs_are_allowed_and_checked() -> None:
    problems = texts(
        {"1": {"output": {"a": {"b": [2, 3]}}}, "2": {}, "start": [[1, {}]]}
    )

    assert problems == ["node 1: output 'a/b' links to node 3, which does not exist"]


def test_link_values_of_the_wrong_type() -> None:
    problems = texts(
        {
            "1": {"output": "2", "error": [True, None]},
            "2": {"output": 1.5},
            "start": [[1, {}], [2, {}]],
        }
    )

    assert problems == [
        "node 1: output links to '2', which is not a node id",
        "node 1: error links to True, which is not a node id",
        "node 1: error links to None, which is not a node id",
        "node 2: output links to 1.5, which is not a node id",
    ]


def test_a_null_link_is_allowed() -> None:
    assert texts({"1": {"output": None, "error": None}, "start": [[1, {}]]}) == []


def test_queue_topic_and_delay_types() -> None:
    problems = texts(
        {"1": {"queue": "", "topic": 3, "transport-delay": -1}, "start": [[1, {}]]}
    )

    assert problems == [
        "node 1: 'queue' must be a non-empty string, got ''",
        "node 1: 'topic' must be a non-empty string, got 3",
        "node 1: 'transport-delay' must be a number of seconds (0 or more), got -1",
    ]


def test_an_exchange_is_a_name_and_has_no_delay() -> None:
    problems = texts(
        {
            "1": {"queue": "a", "exchange": "", "output": [2, 3]},
            "2": {"queue": "b", "exchange": "site", "transport-delay": 2},
            "3": {"queue": "c", "exchange": "site", "transport-delay": 0, "output": 4},
            "4": {"topic": "d", "exchange": "site"},
            "start": [[1, {}]],
        }
    )

    assert problems == [
        "node 1: 'exchange' must be a non-empty string, got ''",
        "node 2: 'exchange' and a 'transport-delay' above 0 cannot go together: a "
        "delayed message is not sent through an exchange",
        "node 4: 'exchange' routes a node's queue messages, and this node has no queue",
    ]


def test_a_node_linking_to_itself_is_allowed() -> None:
    assert texts({"1": {"queue": "a", "output": 1}, "start": [[1, {}]]}) == []


def test_longer_cycles_are_problems_naming_the_node_that_closes_them() -> None:
    problems = texts(
        {
            "1": {"output": 2},
            "2": {"output": {"again": 3}},
            "3": {"error": 1},
            "start": [[1, {}]],
        }
    )

    assert problems == [
        "node 3: error links back to node 1, forming the cycle 1 -> 2 -> 3 -> 1; only "
        "a link from a node to itself may loop"
    ]


def test_a_diamond_is_not_a_cycle() -> None:
    recipe = {
        "1": {"output": [2, 3]},
        "2": {"output": 4},
        "3": {"output": 4},
        "4": {},
        "start": [[1, {}]],
    }

    assert texts(recipe) == []


def test_unreachable_nodes_are_problems() -> None:
    problems = texts({"1": {}, "2": {"output": 3}, "3": {}, "start": [[1, {}]]})

    message = (
        "is not reachable from 'start' or 'error'; link to it from another node or "
        "remove it"
    )
    assert problems == [f"node 2: {message}", f"node 3: {message}"]


def test_nodes_reached_only_through_error_links_count_as_reachable() -> None:
    recipe = {"1": {"error": 2}, "2": {}, "3": {"output": 4}, "4": {}}
    recipe["start"] = [[1, {}]]
    recipe["error"] = [3]

    assert texts(recipe) == []


def test_every_problem_is_reported_at_once() -> None:
    recipe = Recipe(
        {
            "1": {"output": {"done": 7}},
            "2": [],
            "start": [["start", {}]],
            "error": ["error"],
            "x": 1,
        }
    )

    with pytest.raises(InvalidRecipeError) as caught:
        recipe.validate()

    error = caught.value
    assert isinstance(error, RecipeError)
    assert [problem.node for problem in error.problems] == [
        "x",
        "start",
        "error",
        1,
        2,
        1,
        2,
    ]
    assert str(error).splitlines()[0] == "recipe is invalid (7 problems):"
    for problem in error.problems:
        assert f"  {problem}" in str(error).splitlines()


def test_validate_names_the_recipe() -> None:
    with pytest.raises(RecipeError, match=r"^example.json is invalid \(1 problem\):"):
        Recipe({"1": {"output": 5}, "start": [[1, {}]]}).validate("example.json")


def test_problem_locations() -> None:
    assert RecipeProblem(3, "m").location == "node 3"
    assert RecipeProblem("start", "m").location == "start"
    assert RecipeProblem("error", "m").location == "error"
    assert RecipeProblem("x", "m").location == "key 'x'"
    assert RecipeProblem(None, "m").location == "recipe"
    assert str(RecipeProblem(0, "bad")) == "node 0: bad"


def test_validation_does_not_change_the_recipe() -> None:
    recipe = Recipe(valid())
    before = recipe.to_dict()

    recipe.problems()

    assert recipe.to_dict() == before
