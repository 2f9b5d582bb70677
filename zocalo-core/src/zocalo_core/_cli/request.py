"""Building a processing request, as `zocalo go` sends it and `zocalo run` starts it."""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from zocalo_core._errors import RecipeError
from zocalo_core._recipe import Recipe

#: The queue the Dispatcher consumes.
PROCESSING_QUEUE = "processing_recipe"


F = TypeVar("F", bound=Callable[..., Any])


def request_options(command: F) -> F:
    """`-r`, `-f`, `-s`, `-n` and the ID argument, shared by `go` and `run`."""
    decorators = [
        click.option(
            "-r",
            "--recipe",
            "recipes",
            multiple=True,
            metavar="NAME",
            help="Recipe from the recipe directory, without `.json`; may be repeated.",
        ),
        click.option(
            "-f",
            "--file",
            "recipe_file",
            metavar="FILE",
            help="A recipe file, sent along as a custom recipe.",
        ),
        click.option(
            "-s",
            "--set",
            "settings",
            multiple=True,
            metavar="KEY=VALUE",
            help="A recipe parameter; may be repeated.",
        ),
        click.option("-n", "--no-dcid", "no_id", is_flag=True, help="Use no ID."),
        click.argument("ids", nargs=-1, metavar="ID"),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def parse_settings(settings: Sequence[str]) -> dict[str, str]:
    """`-s key=value` options as a dict; a setting without `=` is a usage error."""
    parameters: dict[str, str] = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals or not key:
            message = f"invalid setting {setting!r}: write it as KEY=VALUE"
            raise click.BadParameter(message, param_hint="'-s/--set'")
        parameters[key] = value
    return parameters


def load_recipe_file(path: str) -> dict[str, Any]:
    """Read and validate a recipe file for `custom_recipe`, reporting every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe file {path}: {exc.strerror}") from exc
    recipe = Recipe(text)
    recipe.validate(what=f"recipe file {path}")
    return recipe.to_dict()


def build_request(
    *,
    recipes: Sequence[str],
    recipe_file: str | None,
    settings: Sequence[str],
    ids: Sequence[str],
    no_id: bool,
) -> dict[str, Any]:
    """The request body: recipes, an optional custom recipe and the parameters.

    The recipe ID (`parameters.guid`) is chosen here, so that the caller can print it
    before anything runs. Unless `no_id`, exactly one positive integer ID is required;
    it becomes `parameters.ispyb_dcid` as in the existing system.
    """
    if not recipes and recipe_file is None:
        raise click.UsageError("no recipe given: name one with -r NAME or -f FILE")
    parameters: dict[str, Any] = parse_settings(settings)
    if not no_id:
        parameters["ispyb_dcid"] = _single_id(ids)
    elif ids:
        raise click.UsageError("an ID was given together with -n/--no-dcid")
    parameters.setdefault("guid", str(uuid.uuid4()))
    request: dict[str, Any] = {"recipes": list(recipes), "parameters": parameters}
    if recipe_file is not None:
        request["custom_recipe"] = load_recipe_file(recipe_file)
    return request


def _single_id(ids: Sequence[str]) -> int:
    if len(ids) != 1:
        given = "no ID" if not ids else f"{len(ids)} IDs"
        raise click.UsageError(f"{given} given: pass exactly one ID, or -n/--no-dcid")
    try:
        number = int(ids[0])
    except ValueError:
        number = 0
    if number <= 0:
        raise click.UsageError(
            f"the ID must be a positive whole number, not {ids[0]!r}"
        )
    return number


def request_headers() -> dict[str, str]:
    """Who sent the request, as the existing `zocalo.go` records it."""
    return {"zocalo.go.user": getpass.getuser(), "zocalo.go.host": socket.gethostname()}


def describe_request(request: dict[str, Any]) -> str:
    return json.dumps(request, indent=2, sort_keys=True)
