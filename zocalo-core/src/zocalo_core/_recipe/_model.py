"""The recipe: a graph of processing steps, held as an immutable value."""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Union

from zocalo_core._errors import RecipeError
from zocalo_core._recipe._parameters import apply_parameters
from zocalo_core._recipe._validate import (
    SPECIAL_KEYS,
    InvalidRecipeError,
    RecipeProblem,
    find_problems,
    is_node_id,
)

logger = logging.getLogger(__name__)

#: What a recipe can be built from.
RecipeSource = Union["Recipe", Mapping[Any, Any], str, bytes, None]

#: Node fields that hold links, normalised so that a single id becomes a list.
LINK_FIELDS = ("output", "error")


class Recipe:
    """A recipe in the format of the existing system.

    Built from a dict, JSON text or another recipe; the source is copied, never changed.
    Node keys given as strings ("0", "1", ...) become integers, and a single-node link
    (`"output": 2`, a named output `"done": 2`, a top-level `"error": 3`) becomes a
    one-item list. Nothing is checked on construction except that the source is a JSON
    object: call `problems()` or `validate()` for that. Indexing returns copies, and
    every method that changes something returns a new recipe.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, source: RecipeSource = None) -> None:
        if isinstance(source, Recipe):
            self._data: dict[Any, Any] = copy.deepcopy(source._data)
            return
        mapping = _as_mapping(source)
        _refuse_deep_nesting(mapping)
        self._data = _normalise(mapping)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Recipe:
        """Load a recipe from a JSON file; an unreadable file is a RecipeError."""
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except (OSError, UnicodeDecodeError) as exc:
            message = f"cannot read recipe file {os.fspath(path)!r}: {exc}"
            raise RecipeError(message) from exc
        try:
            return cls(text)
        except RecipeError as exc:
            message = f"recipe file {os.fspath(path)!r}: {exc}"
            raise RecipeError(message) from exc

    def problems(self) -> list[RecipeProblem]:
        """Everything wrong with this recipe; empty when it is valid."""
        return find_problems(self._data)

    def validate(self, what: str = "recipe") -> None:
        """Raise `InvalidRecipeError` (a RecipeError) listing every problem, if any.

        `what` names the recipe in the message, e.g. a file name.
        """
        problems = self.problems()
        if problems:
            raise InvalidRecipeError(problems, what)

    def apply_parameters(self, parameters: Mapping[str, Any]) -> Recipe:
        """A new recipe with parameter fields filled in everywhere (see the docs)."""
        result = Recipe()
        result._data = _normalise(apply_parameters(self._data, parameters))
        return result

    def merge(self, other: RecipeSource) -> Recipe:
        """A new recipe holding both: `other`'s nodes are renumbered after ours.

        Both must be valid unless one is empty, in which case the result is a copy of
        the other. `start` entries are joined, ours first, and so are `error` lists.
        """
        incoming = other if isinstance(other, Recipe) else Recipe(other)
        if not incoming._data:
            return Recipe(self)
        if not self._data:
            return Recipe(incoming)
        self.validate("recipe merged into")
        incoming.validate("recipe being merged in")
        first_free = max(self.node_ids()) + 1
        renumber = {old: first_free + n for n, old in enumerate(incoming.node_ids())}
        return _merged(self._data, incoming._data, renumber)

    def node_ids(self) -> list[int]:
        """The node ids in ascending order."""
        return sorted(key for key in self._data if is_node_id(key))

    def nodes(self) -> Iterator[tuple[int, Any]]:
        """(node id, copy of the node body) pairs in ascending id order."""
        for node_id in self.node_ids():
            yield node_id, copy.deepcopy(self._data[node_id])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: `start`, `error`, then nodes by id, keys as strings."""
        ordered: list[Any] = [key for key in SPECIAL_KEYS if key in self._data]
        ordered += self.node_ids()
        ordered += [key for key in self._data if key not in ordered]
        return {str(key): copy.deepcopy(self._data[key]) for key in ordered}

    def to_json(self, indent: int | None = None) -> str:
        """The recipe as JSON text; pretty with `indent`."""
        try:
            return json.dumps(self.to_dict(), indent=indent)
        except (TypeError, ValueError) as exc:
            message = f"recipe cannot be written as JSON: {exc}; keep to JSON values"
            raise RecipeError(message) from exc

    def __getitem__(self, key: int | str) -> Any:
        return copy.deepcopy(self._data[_lookup_key(key)])

    def get(self, key: int | str, default: Any = None) -> Any:
        """A copy of a node body, `start` or `error`, or `default` when absent."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        try:
            return _lookup_key(key) in self._data
        except TypeError:
            # An unhashable key cannot name anything in a recipe.
            return False

    def __bool__(self) -> bool:
        return bool(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Recipe):
            return self._data == other._data
        if isinstance(other, Mapping):
            try:
                return self._data == Recipe(other)._data
            except RecipeError:
                return False
        return NotImplemented

    def __repr__(self) -> str:
        return f"Recipe({self.to_dict()!r})"


#: Deeper recipes are refused: nothing real comes close, and the recursive steps of
#: validation and substitution must never hit Python's recursion limit.
MAX_NESTING = 100


def _refuse_deep_nesting(source: Mapping[Any, Any]) -> None:
    pending: list[tuple[Any, int]] = [(source, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            message = f"the recipe is nested more than {MAX_NESTING} levels deep"
            raise RecipeError(message)
        if isinstance(value, Mapping):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend((item, depth + 1) for item in value)


def _as_mapping(source: RecipeSource) -> Mapping[Any, Any]:
    if source is None:
        return {}
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except RecursionError as exc:
            message = f"the recipe is nested more than {MAX_NESTING} levels deep"
            raise RecipeError(message) from exc
        except ValueError as exc:
            message = f"recipe text is not valid JSON: {exc}"
            raise RecipeError(message) from exc
    if not isinstance(source, Mapping):
        message = (
            "a recipe must be a JSON object of node ids, 'start' and 'error', "
            f"not {type(source).__name__}"
        )
        raise RecipeError(message)
    return source


def _normalise(source: Mapping[Any, Any]) -> dict[Any, Any]:
    data: dict[Any, Any] = {}
    for key, value in source.items():
        data.setdefault(_lookup_key(key), copy.deepcopy(value))
    for key, body in data.items():
        if is_node_id(key) and isinstance(body, dict):
            for field in LINK_FIELDS:
                if field in body:
                    body[field] = _listify_links(body[field])
    if is_node_id(data.get("error")):
        data["error"] = [data["error"]]
    return data


def _listify_links(links: Any) -> Any:
    if is_node_id(links):
        return [links]
    if isinstance(links, dict):
        return {name: _listify_links(inner) for name, inner in links.items()}
    return links


def _lookup_key(key: object) -> object:
    # JSON object keys are always text; "0" names node 0 like any other number.
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return key


def _merged(
    ours: Mapping[Any, Any], theirs: Mapping[Any, Any], renumber: Mapping[int, int]
) -> Recipe:
    data: dict[Any, Any] = {
        key: copy.deepcopy(value) for key, value in ours.items() if is_node_id(key)
    }
    for old, new in renumber.items():
        data[new] = _renumbered_body(theirs[old], renumber)
    data["start"] = copy.deepcopy(list(ours["start"]))
    data["start"] += [
        [renumber[node_id], copy.deepcopy(payload)]
        for node_id, payload in theirs["start"]
    ]
    errors = list(ours.get("error") or []) + [
        renumber[node_id] for node_id in theirs.get("error") or []
    ]
    if errors:
        data["error"] = errors
    result = Recipe()
    result._data = data
    return result


def _renumbered_body(body: Mapping[str, Any], renumber: Mapping[int, int]) -> Any:
    result = copy.deepcopy(dict(body))
    for field in LINK_FIELDS:
        if field in result:
            result[field] = _renumbered_links(result[field], renumber)
    return result


def _renumbered_links(links: Any, renumber: Mapping[int, int]) -> Any:
    if isinstance(links, dict):
        return {
            name: _renumbered_links(inner, renumber) for name, inner in links.items()
        }
    if isinstance(links, list):
        return [renumber[target] for target in links]
    return links
