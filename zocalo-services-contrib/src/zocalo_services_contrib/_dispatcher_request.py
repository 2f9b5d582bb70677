"""Turning a processing request into a recipe ready to start, without a transport.

The Dispatcher service calls `prepare_request` for every request it receives, and
`zocalo run` calls it to learn which queues a recipe needs before anything starts. A
request is `{"recipes": [names], "custom_recipe": {...}, "parameters": {...}}`;
`InvalidRequestError` means it can never be processed as it is, while any other error
(a filter failing, a recipe file that cannot be read just now) may pass on a retry.
"""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zocalo_core import (
    ConfigurationError,
    InvalidRecipeError,
    MessageError,
    PluginError,
    Recipe,
    RecipeError,
    SiteConfiguration,
)

logger = logging.getLogger(__name__)

#: The storage key naming the folder of named recipes (`<name>.json` files).
RECIPE_DIRECTORY_KEY = "zocalo.recipe_directory"
#: The registry kinds of the records the Dispatcher uses.
FILTER_KIND = "dispatcher filter"
READINESS_KIND = "readiness check"
#: The parameter holding the recipe ID.
RECIPE_ID_PARAMETER = "guid"

_FORBIDDEN_IN_NAMES = ("/", "\\", "..", "\0")


class RecordSource(Protocol):
    """Where plugin records come from: `zocalo_core.get_registry()` or a test's own."""

    def records(self, kind: str) -> list[Any]: ...


class InvalidRequestError(MessageError):
    """A processing request that no retry can fix: malformed, or naming bad recipes."""


class DispatcherFilterError(PluginError):
    """A Dispatcher filter failed on a request; another try may succeed."""

    def __init__(self, filter_name: str, problem: str) -> None:
        self.filter_name = filter_name
        super().__init__(f"dispatcher filter {filter_name!r} {problem}")


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready to start: the recipe with its parameters filled in.

    `request` is the request after the filters, its `parameters` replaced by
    `parameters`, which hold `guid`, the recipe ID.
    """

    recipe: Recipe
    parameters: dict[str, Any]
    recipe_id: str
    request: dict[str, Any]

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues the recipe's nodes send to, sorted, each once."""
        names = {
            node["queue"]
            for _, node in self.recipe.nodes()
            if isinstance(node, Mapping) and isinstance(node.get("queue"), str)
        }
        return tuple(sorted(names))


def site_path(site: SiteConfiguration | None, key: str) -> Path | None:
    """The path in storage key `key`, relative ones taken from the site file's folder.

    None when there is no site or the key is unset or empty; `~` is expanded.
    """
    if site is None:
        return None
    value = site.storage.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, os.PathLike)):
        message = (
            f"storage key {key!r} must be a path, not {type(value).__name__}; fix it "
            f"in the site file {site.path}"
        )
        raise ConfigurationError(message)
    path = Path(value).expanduser()
    if not path.is_absolute() and site.path is not None:
        path = site.path.parent / path
    return path


def recipe_directory(site: SiteConfiguration | None) -> Path | None:
    """The recipe directory: `storage["zocalo.recipe_directory"]`, or None."""
    return site_path(site, RECIPE_DIRECTORY_KEY)


def normalise_request(request: object) -> dict[str, Any]:
    """A copy of `request` whose `parameters` is a dict holding a `guid`.

    A request without a `guid` (or with an empty one) gets a new uuid4. Calling this
    again on the result changes nothing, so a request sent back to wait keeps its ID.
    """
    if not isinstance(request, Mapping):
        message = (
            f"a processing request must be a JSON object, not {_kind(request)}; send "
            '{"recipes": [...], "parameters": {...}}'
        )
        raise InvalidRequestError(message)
    body: dict[str, Any] = copy.deepcopy(dict(request))
    parameters = body.get("parameters", {})
    if not isinstance(parameters, Mapping):
        message = (
            f"the request's 'parameters' must be a JSON object, not {_kind(parameters)}"
        )
        raise InvalidRequestError(message)
    parameters = dict(parameters)
    recipe_id = parameters.get(RECIPE_ID_PARAMETER)
    if not recipe_id:
        parameters[RECIPE_ID_PARAMETER] = str(uuid.uuid4())
    elif not isinstance(recipe_id, str):
        message = (
            f"the request's parameter 'guid' (the recipe ID) must be a string, not "
            f"{_kind(recipe_id)}; leave it out to get a new one"
        )
        raise InvalidRequestError(message)
    body["parameters"] = parameters
    return body


def prepare_request(
    request: object,
    *,
    site: SiteConfiguration | None,
    registry: RecordSource | None = None,
) -> PreparedRequest:
    """Check `request`, run the Dispatcher filters on it and build its recipe.

    The custom recipe comes first, then the named recipes from the site's recipe
    directory in the order given; the parameters are filled in last. `registry` gives
    the filters (`zocalo_core.get_registry()` when None). Raises `InvalidRequestError`
    for a request that can never work; other errors may pass on another try.
    """
    if registry is None:
        from zocalo_core import get_registry

        registry = get_registry()
    body = normalise_request(request)
    recipe_id = body["parameters"][RECIPE_ID_PARAMETER]
    body = apply_filters(body, registry.records(FILTER_KIND))
    # The recipe ID is fixed before the filters run, so `{guid}` in the recipe and
    # the ID the messages carry can never disagree.
    body["parameters"][RECIPE_ID_PARAMETER] = recipe_id
    recipe = build_recipe(body, recipe_directory(site))
    recipe = recipe.apply_parameters(body["parameters"])
    try:
        recipe.validate("the recipe with its parameters filled in")
    except InvalidRecipeError as exc:
        raise InvalidRequestError(str(exc)) from exc
    logger.debug(
        "request %s: recipes %s, parameters %s",
        recipe_id,
        body.get("recipes") or [],
        sorted(map(str, body["parameters"])),
    )
    return PreparedRequest(recipe, body["parameters"], recipe_id, body)


def apply_filters(body: dict[str, Any], filters: list[Any]) -> dict[str, Any]:
    """Run each `DispatcherFilter` in order on copies; their parameters win."""
    for record in filters:
        try:
            result = record.function(
                copy.deepcopy(body), copy.deepcopy(body["parameters"])
            )
        except Exception as exc:
            error = DispatcherFilterError(
                record.name, f"failed: {type(exc).__name__}: {exc}"
            )
            raise error from exc
        if (
            not isinstance(result, (tuple, list))
            or len(result) != 2
            or not all(isinstance(part, Mapping) for part in result)
        ):
            problem = (
                f"returned {_kind(result)}; a filter must return the tuple "
                "(message, parameters) of two dicts"
            )
            raise DispatcherFilterError(record.name, problem)
        body = copy.deepcopy(dict(result[0]))
        body["parameters"] = copy.deepcopy(dict(result[1]))
    return body


def build_recipe(body: Mapping[str, Any], directory: Path | None) -> Recipe:
    """The request's custom recipe merged with its named recipes, in that order."""
    names = _recipe_names(body)
    custom = _custom_recipe(body)
    if not names and custom is None:
        message = (
            "the request names no recipe; give 'recipes' (names of files in the "
            "recipe directory, without .json) or a 'custom_recipe'"
        )
        raise InvalidRequestError(message)
    recipe = Recipe()
    if custom is not None:
        recipe = recipe.merge(custom)
    for name in names:
        recipe = recipe.merge(load_named_recipe(name, directory))
    return recipe


def _recipe_names(body: Mapping[str, Any]) -> list[str]:
    names = body.get("recipes")
    if names is None:
        return []
    if not isinstance(names, list):
        message = (
            f"the request's 'recipes' must be a list of recipe names, not "
            f"{_kind(names)}"
        )
        raise InvalidRequestError(message)
    return names


def _custom_recipe(body: Mapping[str, Any]) -> Recipe | None:
    source = body.get("custom_recipe")
    if not source:
        return None
    if not isinstance(source, Mapping):
        message = (
            f"the request's 'custom_recipe' must be a recipe (a JSON object), not "
            f"{_kind(source)}"
        )
        raise InvalidRequestError(message)
    try:
        recipe = Recipe(source)
        recipe.validate("the request's custom recipe")
    except RecipeError as exc:
        raise InvalidRequestError(str(exc)) from exc
    logger.debug(
        "the request brings a custom recipe of %d nodes", len(recipe.node_ids())
    )
    return recipe


def check_recipe_name(name: object) -> str:
    """`name` if it is a plain recipe name, else `InvalidRequestError`.

    A recipe name is a file name without `.json`: a non-empty string without path
    separators, `..`, or control characters.
    """
    if not isinstance(name, str) or not name.strip():
        problem = "must be a non-empty string"
    elif any(part in name for part in _FORBIDDEN_IN_NAMES):
        problem = "must be a plain name, without '/', '\\' or '..'"
    elif not name.isprintable():
        problem = "must be a plain name, without control characters"
    else:
        return name
    message = (
        f"the request names the recipe {name!r}, which is not allowed: a recipe name "
        f"{problem} (the name of a file in the recipe directory, without .json)"
    )
    raise InvalidRequestError(message)


def named_recipe_path(name: object, directory: Path | None) -> Path:
    """The file of recipe `name`, checked to lie inside `directory` (links resolved)."""
    checked = check_recipe_name(name)
    if directory is None:
        message = (
            f"the request names the recipe {checked!r}, but no recipe directory is "
            f"configured; set the storage key {RECIPE_DIRECTORY_KEY!r} in the site "
            "file, or send the recipe as 'custom_recipe'"
        )
        raise InvalidRequestError(message)
    if not directory.is_dir():
        message = (
            f"the recipe directory {directory} (storage key {RECIPE_DIRECTORY_KEY!r}) "
            "is not a folder that exists; create or mount it, or fix the site file"
        )
        raise ConfigurationError(message)
    base = directory.resolve()
    path = (base / f"{checked}.json").resolve()
    if not path.is_relative_to(base):
        message = (
            f"the request names the recipe {checked!r}, whose file leads outside the "
            f"recipe directory {directory}; only recipes inside it can be used"
        )
        raise InvalidRequestError(message)
    return path


def load_named_recipe(name: object, directory: Path | None) -> Recipe:
    """Read and validate the named recipe from the recipe directory."""
    path = named_recipe_path(name, directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        message = (
            f"the request names the recipe {name!r}, but the recipe directory "
            f"{directory} has no file {path.name}; check the name"
        )
        raise InvalidRequestError(message) from exc
    except UnicodeDecodeError as exc:
        message = f"recipe file {path} is not UTF-8 text ({exc}); fix the file"
        raise InvalidRequestError(message) from exc
    except OSError as exc:
        message = f"cannot read recipe file {path}: {exc}"
        raise RecipeError(message) from exc
    what = f"recipe {name!r} ({path})"
    try:
        recipe = Recipe(text)
    except RecipeError as exc:
        raise InvalidRequestError(f"{what}: {exc}; fix the file") from exc
    try:
        recipe.validate(what)
    except InvalidRecipeError as exc:
        raise InvalidRequestError(str(exc)) from exc
    return recipe


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages about what was sent."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return type(value).__name__
