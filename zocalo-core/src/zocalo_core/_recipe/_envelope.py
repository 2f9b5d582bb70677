"""The recipe-message envelope, as the existing system writes and reads it.

Every message sent along a recipe carries the header `workflows-recipe` and a body

    {"environment": {...}, "payload": ..., "recipe": {...},
     "recipe-path": [node ids visited], "recipe-pointer": node id}

The recipe ID, when the recipe has one, is `environment["ID"]`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zocalo_core._errors import RecipeError
from zocalo_core._recipe._model import Recipe
from zocalo_core._recipe._validate import is_node_id

logger = logging.getLogger(__name__)

#: The header that marks a message as travelling along a recipe.
RECIPE_HEADER = "workflows-recipe"

#: The key of the recipe ID in a recipe's environment.
RECIPE_ID_KEY = "ID"

#: The body keys of a recipe message.
ENVELOPE_KEYS = ("environment", "payload", "recipe", "recipe-path", "recipe-pointer")

# STOMP turns header values into text, and older senders wrote 1 for True.
_TRUE_HEADER_VALUES = ("True", "true")


def is_recipe_message(headers: Mapping[str, Any] | None) -> bool:
    """Whether message headers mark a recipe message (True, "True", "true" or 1)."""
    if not headers:
        return False
    value = headers.get(RECIPE_HEADER)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value in _TRUE_HEADER_VALUES


def recipe_headers(headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new header dict: a copy of `headers` with the recipe flag set."""
    result = dict(headers or {})
    result[RECIPE_HEADER] = True
    return result


@dataclass(frozen=True)
class RecipeEnvelope:
    """The decoded body of one recipe message."""

    recipe: Recipe
    recipe_pointer: int
    recipe_path: list[int] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    payload: Any = None

    @property
    def recipe_id(self) -> Any:
        """`environment["ID"]`, or None when the recipe has no ID (yet)."""
        return self.environment.get(RECIPE_ID_KEY)

    def to_body(self) -> dict[str, Any]:
        """The JSON-ready message body; every part is a fresh copy."""
        return build_envelope(
            recipe=self.recipe,
            recipe_pointer=self.recipe_pointer,
            recipe_path=self.recipe_path,
            environment=self.environment,
            payload=self.payload,
        )


def build_envelope(
    *,
    recipe: Recipe,
    recipe_pointer: int,
    recipe_path: list[int],
    environment: Mapping[str, Any],
    payload: Any,
) -> dict[str, Any]:
    """A recipe-message body. Every part is copied, so one body per destination never
    shares state with the caller or with another destination's body."""
    return {
        "environment": copy.deepcopy(dict(environment)),
        "payload": copy.deepcopy(payload),
        "recipe": recipe.to_dict(),
        "recipe-path": list(recipe_path),
        "recipe-pointer": recipe_pointer,
    }


def parse_envelope(body: Any) -> RecipeEnvelope:
    """Decode a recipe-message body; a body that does not fit is a RecipeError."""
    if not isinstance(body, Mapping):
        message = (
            f"recipe message body must be a JSON object, not {type(body).__name__}; "
            "was it sent by a recipe-aware sender?"
        )
        raise RecipeError(message)
    missing = [key for key in ("recipe", "recipe-pointer") if key not in body]
    if missing:
        message = f"recipe message body lacks {', '.join(map(repr, missing))}"
        raise RecipeError(message)
    recipe = Recipe(body["recipe"])
    pointer = body["recipe-pointer"]
    if not is_node_id(pointer) or pointer not in recipe:
        message = (
            f"recipe message points at node {pointer!r}, which is not a node of its "
            f"recipe (nodes: {recipe.node_ids()})"
        )
        raise RecipeError(message)
    if not isinstance(recipe[pointer], dict):
        message = (
            f"recipe message points at node {pointer}, which is not a JSON object in "
            "its recipe; fix the recipe (zocalo recipe validate)"
        )
        raise RecipeError(message)
    return RecipeEnvelope(
        recipe=recipe,
        recipe_pointer=pointer,
        recipe_path=_path(body.get("recipe-path")),
        environment=_environment(body.get("environment")),
        payload=copy.deepcopy(body.get("payload")),
    )


def _path(value: Any) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(is_node_id(item) for item in value):
        message = (
            f"recipe message 'recipe-path' must be a list of node ids, not {value!r}"
        )
        raise RecipeError(message)
    return list(value)


def _environment(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        message = (
            "recipe message 'environment' must be a JSON object, "
            f"not {type(value).__name__}"
        )
        raise RecipeError(message)
    return copy.deepcopy(dict(value))
