"""Recipes: the model, validation, safe parameters, the envelope and the wrapper.

The format and the message envelope are those of the existing system, so recipes and
services written for it interoperate with ours; `docs/recipes.md` describes both.
"""

from __future__ import annotations

from zocalo_core._recipe._envelope import (
    ENVELOPE_KEYS,
    RECIPE_HEADER,
    RECIPE_ID_KEY,
    RecipeEnvelope,
    build_envelope,
    is_recipe_message,
    parse_envelope,
    recipe_headers,
)
from zocalo_core._recipe._graph import to_dot, to_mermaid
from zocalo_core._recipe._model import Recipe, RecipeSource
from zocalo_core._recipe._parameters import apply_parameters
from zocalo_core._recipe._validate import InvalidRecipeError, RecipeProblem
from zocalo_core._recipe._wrapper import (
    RecipeMessage,
    RecipeTransport,
    RecipeWrapper,
    start_recipe,
)

__all__ = [
    "ENVELOPE_KEYS",
    "RECIPE_HEADER",
    "RECIPE_ID_KEY",
    "InvalidRecipeError",
    "Recipe",
    "RecipeEnvelope",
    "RecipeMessage",
    "RecipeProblem",
    "RecipeSource",
    "RecipeTransport",
    "RecipeWrapper",
    "apply_parameters",
    "build_envelope",
    "is_recipe_message",
    "parse_envelope",
    "recipe_headers",
    "start_recipe",
    "to_dot",
    "to_mermaid",
]
