from __future__ import annotations

import copy
import json

import pytest
from zocalo_core._errors import RecipeError
from zocalo_core._recipe import Recipe


def simple() -> dict:
    return {
        "1": {"queue": "one", "output": 2, "error": 3},
        "2": {"queue": "two", "output": {"done": 3, "more": [3]}},
        "3": {"topic": "three"},
        "start": [[1, {"x": 1}]],
    }


def test_string_keys_become_integers_including_zero() -> None:
    recipe = Recipe({"0": {"queue": "a"}, "10": {"queue": "b"}, "start": [[0, {}]]})

    assert recipe.node_ids() == [0, 10]
    assert recipe[0] == {"queue": "a"}
    assert 0 in recipe
    assert "10" in recipe


def test_scalar_links_become_one_item_lists() -> None:
    recipe = Recipe({**simple(), "error": 3})

    assert recipe[1]["output"] == [2]
    assert recipe[1]["error"] == [3]
    assert recipe[2]["output"] == {"done": [3], "more": [3]}
    assert recipe["error"] == [3]


def test_top_level_error_list_is_kept() -> None:
    assert Recipe({**simple(), "error": [3]})["error"] == [3]


def test_json_text_gives_the_same_recipe_as_the_dict() -> None:
    assert Recipe(json.dumps(simple())) == Recipe(simple())
    assert Recipe(json.dumps(simple()).encode()) == Recipe(simple())


def test_text_that_is_not_json_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="not valid JSON"):
        Recipe("{'1': nope")


def test_a_top_level_that_is_not_an_object_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="not list"):
        Recipe("[1, 2]")


def test_non_numeric_keys_are_problems_not_crashes() -> None:
    recipe = Recipe({**simple(), "banana": {"queue": "x"}, "-1": {}})

    texts = [str(problem) for problem in recipe.problems()]

    assert any(text.startswith("key 'banana': is not a node id") for text in texts)
    assert any(text.startswith("key '-1': is not a node id") for text in texts)


def test_loading_does_not_change_the_callers_dict() -> None:
    source = simple()
    before = copy.deepcopy(source)

    recipe = Recipe(source)
    recipe.to_dict()["1"]["queue"] = "changed"

    assert source == before
    assert recipe[1]["queue"] == "one"


def test_indexing_and_nodes_return_copies() -> None:
    recipe = Recipe(simple())

    recipe[1]["queue"] = "changed"
    for _, body in recipe.nodes():
        body["queue"] = "changed"
    recipe["start"].append([3, {}])

    assert recipe[1]["queue"] == "one"
    assert recipe[2]["queue"] == "two"
    assert recipe["start"] == [[1, {"x": 1}]]


def test_nodes_iterates_in_id_order() -> None:
    recipe = Recipe({"10": {}, "2": {}, "start": [[2, {}]]})

    assert [node_id for node_id, _ in recipe.nodes()] == [2, 10]


def test_get_and_missing_keys() -> None:
    recipe = Recipe(simple())

    assert recipe.get(9) is None
    assert recipe.get("error", []) == []
    assert [1] not in recipe
    with pytest.raises(KeyError):
        recipe[9]


def test_equality_with_dicts_and_recipes() -> None:
    recipe = Recipe(simple())

    assert recipe == simple()
    assert recipe == Recipe(simple())
    assert recipe != {**simple(), "3": {"topic": "other"}}
    assert recipe != "not a recipe"
    assert (recipe == [1]) is False


def test_recipes_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Recipe(simple()))


def test_to_dict_and_to_json_round_trip() -> None:
    recipe = Recipe({**simple(), "error": 3})

    as_dict = recipe.to_dict()

    assert list(as_dict) == ["start", "error", "1", "2", "3"]
    assert Recipe(as_dict) == recipe
    assert Recipe(recipe.to_json(indent=2)) == recipe
    assert json.loads(recipe.to_json()) == as_dict


def test_to_json_of_a_value_json_cannot_hold_is_a_recipe_error() -> None:
    recipe = Recipe({"1": {"queue": "a", "parameters": {1, 2}}, "start": [[1, {}]]})

    with pytest.raises(RecipeError, match="cannot be written as JSON"):
        recipe.to_json()


def test_empty_recipe() -> None:
    assert not Recipe()
    assert Recipe(None) == {}
    assert Recipe(simple())


def test_copying_a_recipe() -> None:
    original = Recipe(simple())
    duplicate = Recipe(original)

    assert duplicate == original
    assert duplicate is not original


def test_apply_parameters_returns_a_new_recipe_and_changes_nothing() -> None:
    source = {"1": {"queue": "q.{name}", "output": 2}, "2": {}, "start": [[1, {}]]}
    parameters = {"name": "x", "lst": [1]}
    before_source, before_parameters = copy.deepcopy(source), copy.deepcopy(parameters)
    recipe = Recipe(source)

    filled = recipe.apply_parameters(parameters)

    assert filled[1]["queue"] == "q.x"
    assert recipe[1]["queue"] == "q.{name}"
    assert source == before_source
    assert parameters == before_parameters


def test_apply_parameters_keeps_links_normalised() -> None:
    recipe = Recipe({"1": {"queue": "a", "output": 2}, "2": {}, "start": [[1, {}]]})

    assert recipe.apply_parameters({})[1]["output"] == [2]


def merge_sides() -> tuple[dict, dict]:
    ours = {
        "1": {"queue": "a", "output": 2},
        "2": {"queue": "b"},
        "start": [[1, {"side": "ours"}]],
        "error": 2,
    }
    theirs = {
        "1": {"queue": "c", "output": {"done": 2, "fail": [5]}, "error": 5},
        "2": {"queue": "d"},
        "5": {"queue": "e"},
        "start": [[1, {"side": "theirs"}], [2, {}]],
        "error": [5],
    }
    return ours, theirs


def test_merge_renumbers_the_other_recipe_after_ours() -> None:
    ours, theirs = merge_sides()

    merged = Recipe(ours).merge(Recipe(theirs))

    assert merged.node_ids() == [1, 2, 3, 4, 5]
    assert merged[3] == {
        "queue": "c",
        "output": {"done": [4], "fail": [5]},
        "error": [5],
    }
    assert merged[4] == {"queue": "d"}
    assert merged[5] == {"queue": "e"}
    assert merged["start"] == [[1, {"side": "ours"}], [3, {"side": "theirs"}], [4, {}]]
    assert merged["error"] == [2, 5]
    assert merged.problems() == []


def test_merge_changes_neither_side() -> None:
    ours, theirs = merge_sides()
    before_ours, before_theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
    left, right = Recipe(ours), Recipe(theirs)

    left.merge(right)
    left.merge(theirs)

    assert ours == before_ours
    assert theirs == before_theirs
    assert left == before_ours
    assert right == before_theirs


def test_merge_with_an_empty_side_copies_the_other() -> None:
    ours, _ = merge_sides()

    assert Recipe().merge(ours) == ours
    assert Recipe(ours).merge(None) == ours
    assert Recipe(ours).merge(Recipe()) == ours


def test_merge_accepts_json_text() -> None:
    ours, theirs = merge_sides()

    assert Recipe(ours).merge(json.dumps(theirs)) == Recipe(ours).merge(theirs)


def test_merge_refuses_an_invalid_side_naming_it() -> None:
    ours, _ = merge_sides()

    with pytest.raises(RecipeError, match="recipe being merged in is invalid"):
        Recipe(ours).merge({"1": {"output": 7}, "start": [[1, {}]]})


def test_from_file(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(simple()))

    assert Recipe.from_file(path) == simple()


def test_from_file_errors_name_the_file(tmp_path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")

    with pytest.raises(RecipeError, match=r"broken\.json.*not valid JSON"):
        Recipe.from_file(broken)
    with pytest.raises(RecipeError, match=r"cannot read recipe file.*missing\.json"):
        Recipe.from_file(tmp_path / "missing.json")


def test_a_recipe_nested_deeper_than_the_limit_is_refused_with_a_recipe_error() -> None:
    from zocalo_core import RecipeError
    from zocalo_core._recipe._model import MAX_NESTING

    deep_text = '{"a": ' * 3000 + "1" + "}" * 3000
    text = '{"1": {"queue": "q", "parameters": ' + deep_text + '}, "start": [[1, {}]]}'
    nested: dict[str, object] = {}
    level = nested
    for _ in range(MAX_NESTING + 1):
        level["a"] = {}
        level = level["a"]  # type: ignore[assignment]

    with pytest.raises(RecipeError, match="nested more than 100 levels deep"):
        Recipe(text)
    with pytest.raises(RecipeError, match="nested more than 100 levels deep"):
        Recipe({"1": {"queue": "q", "parameters": nested}, "start": [[1, {}]]})
