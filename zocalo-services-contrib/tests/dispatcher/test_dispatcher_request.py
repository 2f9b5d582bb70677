"""`prepare_request`: from a processing request to a recipe, without a transport."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import (
    ConfigurationError,
    DispatcherFilter,
    RecipeError,
    SiteConfiguration,
)
from zocalo_services_contrib._dispatcher import (
    DispatcherFilterError,
    InvalidRequestError,
    prepare_request,
    recipe_directory,
)

CUSTOM = {"1": {"queue": "q.custom", "output": 2}, "2": {"queue": "q.custom.end"}}
CUSTOM["start"] = [[1, {"from": "custom"}]]  # type: ignore[assignment]

SiteFactory = Callable[..., SiteConfiguration]


def prepare(request: Any, site: SiteConfiguration | None, **kwargs: Any) -> Any:
    kwargs.setdefault("registry", _empty_registry())
    return prepare_request(request, site=site, **kwargs)


def _empty_registry() -> Any:
    class Empty:
        def records(self, kind: str) -> list[Any]:
            return []

    return Empty()


def test_a_named_recipe_gets_its_parameters_and_the_given_guid(
    make_site: SiteFactory,
) -> None:
    request = {"recipes": ["first"], "parameters": {"guid": "abc-1", "ispyb_dcid": 7}}

    prepared = prepare(request, make_site())

    assert prepared.recipe_id == "abc-1"
    assert prepared.recipe[1]["parameters"] == {"id": "abc-1", "dcid": "7"}
    assert prepared.parameters == {"guid": "abc-1", "ispyb_dcid": 7}
    assert prepared.queues == ("q.first",)


def test_a_request_without_guid_gets_a_new_uuid4(make_site: SiteFactory) -> None:
    prepared = prepare({"recipes": ["first"]}, make_site())

    assert uuid.UUID(prepared.recipe_id).version == 4
    assert prepared.parameters["guid"] == prepared.recipe_id
    assert prepared.recipe[1]["parameters"]["id"] == prepared.recipe_id
    assert prepared.request["parameters"]["guid"] == prepared.recipe_id


def test_the_callers_request_is_not_changed(make_site: SiteFactory) -> None:
    request: dict[str, Any] = {"recipes": ["first"], "parameters": {}}

    prepare(request, make_site())

    assert request == {"recipes": ["first"], "parameters": {}}


def test_custom_recipe_comes_first_then_named_recipes_in_order(
    make_site: SiteFactory,
) -> None:
    request = {"custom_recipe": CUSTOM, "recipes": ["second", "first"]}

    prepared = prepare(request, make_site())

    queues = {node_id: node["queue"] for node_id, node in prepared.recipe.nodes()}
    assert queues == {
        1: "q.custom",
        2: "q.custom.end",
        3: "q.second",
        4: "q.second.next",
        5: "q.first",
    }
    assert prepared.recipe["start"] == [
        [1, {"from": "custom"}],
        [3, {"from": "second"}],
        [5, {"from": "first"}],
    ]


def test_a_relative_recipe_directory_is_taken_from_the_site_files_folder(
    make_site: SiteFactory, site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site_dir.parent)

    assert recipe_directory(make_site()) == site_dir / "recipes"
    assert recipe_directory(None) is None


@pytest.mark.parametrize(
    ("request_body", "reason"),
    [
        (["recipes", "first"], "must be a JSON object, not a list"),
        ("first", "must be a JSON object, not a string"),
        ({"recipes": ["first"], "parameters": [1]}, "'parameters' must be a JSON"),
        ({"recipes": ["first"], "parameters": {"guid": 5}}, "'guid'"),
        ({"parameters": {"x": 1}}, "names no recipe"),
        ({"recipes": [], "custom_recipe": {}}, "names no recipe"),
        ({"recipes": "first"}, "'recipes' must be a list"),
        ({"recipes": ["../x"]}, "not allowed"),
        ({"recipes": ["/etc/passwd"]}, "not allowed"),
        ({"recipes": ["sub/first"]}, "not allowed"),
        ({"recipes": [""]}, "not allowed"),
        ({"recipes": [3]}, "not allowed"),
        ({"recipes": ["missing"]}, "has no file missing.json"),
        ({"recipes": ["broken"]}, "recipe 'broken'"),
        ({"custom_recipe": {"1": {"queue": "q"}}}, "custom recipe is invalid"),
        ({"custom_recipe": "text"}, "'custom_recipe' must be a recipe"),
    ],
)
def test_requests_that_cannot_work_are_invalid(
    make_site: SiteFactory, request_body: Any, reason: str
) -> None:
    with pytest.raises(InvalidRequestError, match=reason):
        prepare(request_body, make_site())


def test_a_link_out_of_the_recipe_directory_is_invalid(
    make_site: SiteFactory, site_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(CUSTOM))
    (site_dir / "recipes" / "escape.json").symlink_to(outside)

    with pytest.raises(InvalidRequestError, match="leads outside the recipe"):
        prepare({"recipes": ["escape"]}, make_site())


def test_a_link_inside_the_recipe_directory_is_followed(
    make_site: SiteFactory, site_dir: Path
) -> None:
    (site_dir / "recipes" / "alias.json").symlink_to("first.json")

    prepared = prepare({"recipes": ["alias"]}, make_site())

    assert prepared.queues == ("q.first",)


def test_a_named_recipe_without_a_recipe_directory_says_how_to_configure_one(
    make_site: SiteFactory,
) -> None:
    site = make_site(**{"zocalo.recipe_directory": None})

    for chosen in (site, None):
        with pytest.raises(InvalidRequestError, match=r"zocalo\.recipe_directory"):
            prepare({"recipes": ["first"]}, chosen)
    assert prepare({"custom_recipe": CUSTOM}, None).queues == (
        "q.custom",
        "q.custom.end",
    )


def test_a_missing_recipe_directory_is_a_configuration_problem(
    make_site: SiteFactory,
) -> None:
    site = make_site(**{"zocalo.recipe_directory": "nowhere"})

    with pytest.raises(ConfigurationError, match="nowhere"):
        prepare({"recipes": ["first"]}, site)


def test_an_unreadable_recipe_file_is_not_invalid(
    make_site: SiteFactory, site_dir: Path
) -> None:
    # A folder where a file should be cannot be read, but may be fixed: not invalid.
    (site_dir / "recipes" / "folder.json").mkdir()

    with pytest.raises(RecipeError, match="cannot read") as raised:
        prepare({"recipes": ["folder"]}, make_site())
    assert not isinstance(raised.value, InvalidRequestError)


def test_a_parameter_that_breaks_the_recipe_makes_it_invalid(
    make_site: SiteFactory,
) -> None:
    custom = {"1": {"queue": "{$REPLACE:where}"}, "start": [[1, {}]]}

    with pytest.raises(InvalidRequestError, match="parameters filled in"):
        prepare({"custom_recipe": custom, "parameters": {"where": 5}}, make_site())


def test_filters_run_in_order_on_copies_and_their_parameters_win(
    make_site: SiteFactory, registry: Any
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def add_dcid(message: dict[str, Any], parameters: dict[str, Any]) -> Any:
        seen.append(("add", dict(parameters)))
        parameters["ispyb_dcid"] = 1234
        message["recipes"].append("should not leak")
        return {**message, "recipes": ["first"]}, parameters

    def double_dcid(message: dict[str, Any], parameters: dict[str, Any]) -> Any:
        seen.append(("double", dict(parameters)))
        return message, {**parameters, "ispyb_dcid": parameters["ispyb_dcid"] * 2}

    filters = [
        DispatcherFilter("add", add_dcid, "adds a dcid"),
        DispatcherFilter("double", double_dcid, "doubles it"),
    ]
    request = {"recipes": ["second"], "parameters": {"guid": "g-1"}}

    prepared = prepare(request, make_site(), registry=registry(filters=filters))

    assert [name for name, _ in seen] == ["add", "double"]
    assert seen[0][1] == {"guid": "g-1"}
    assert prepared.recipe[1]["parameters"]["dcid"] == "2468"
    assert prepared.request["recipes"] == ["first"]
    assert prepared.request["parameters"] == {"guid": "g-1", "ispyb_dcid": 2468}
    assert request == {"recipes": ["second"], "parameters": {"guid": "g-1"}}


def test_a_filter_cannot_change_the_recipe_id(
    make_site: SiteFactory, registry: Any
) -> None:
    def drop_guid(message: dict[str, Any], parameters: dict[str, Any]) -> Any:
        return message, {"ispyb_dcid": 1}

    filters = [DispatcherFilter("drop", drop_guid, "drops the guid")]
    request = {"recipes": ["first"], "parameters": {"guid": "kept"}}

    prepared = prepare(request, make_site(), registry=registry(filters=filters))

    assert prepared.recipe_id == "kept"
    assert prepared.recipe[1]["parameters"]["id"] == "kept"


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        (lambda message, parameters: 1 / 0, "failed: ZeroDivisionError"),
        (lambda message, parameters: message, "must return the tuple"),
        (lambda message, parameters: (message, None), "must return the tuple"),
    ],
)
def test_a_broken_filter_is_named_in_the_error(
    make_site: SiteFactory, registry: Any, function: Any, problem: str
) -> None:
    filters = [DispatcherFilter("ispyb", function, "looks things up")]

    with pytest.raises(DispatcherFilterError, match=problem) as raised:
        prepare({"recipes": ["first"]}, make_site(), registry=registry(filters=filters))
    assert raised.value.filter_name == "ispyb"
    assert "'ispyb'" in str(raised.value)
