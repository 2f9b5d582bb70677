"""`zocalo recipe`: validate, show and draw recipe files."""

from __future__ import annotations

import logging

import click

from zocalo_core._cli.common import SiteOptions, site_options
from zocalo_core._errors import RecipeError
from zocalo_core._recipe import Recipe, RecipeProblem, to_dot, to_mermaid

logger = logging.getLogger(__name__)


@click.group()
def recipe() -> None:
    """Check, show and draw recipe files."""


@recipe.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@site_options
def validate(site: SiteOptions, files: tuple[str, ...]) -> None:
    """Check recipe files; list every problem of each invalid one."""
    failed = 0
    for path in files:
        problems = _file_problems(path)
        if not problems:
            click.echo(f"{path}: ok")
            continue
        failed += 1
        click.echo(f"{path}: invalid")
        for problem in problems:
            click.echo(f"  {problem}")
    if len(files) == 1 and failed:
        raise RecipeError(f"recipe file {files[0]!r} is invalid")
    if failed:
        verb = "is" if failed == 1 else "are"
        raise RecipeError(f"{failed} of {len(files)} recipe files {verb} invalid")


def _file_problems(path: str) -> list[str]:
    try:
        loaded = Recipe.from_file(path)
    except RecipeError as exc:
        return [str(exc)]
    return [str(problem) for problem in loaded.problems()]


def _parse_assignments(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    parameters = {}
    for assignment in values:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            message = f"{assignment!r} is not of the form key=value"
            raise click.BadParameter(message, ctx=ctx, param=param)
        parameters[key] = value
    return parameters


@recipe.command()
@click.argument("file", metavar="FILE")
@click.option(
    "-s",
    "--set",
    "parameters",
    metavar="KEY=VALUE",
    multiple=True,
    callback=_parse_assignments,
    help="Recipe parameter to fill in; may be repeated. Values are text.",
)
@site_options
def show(site: SiteOptions, file: str, parameters: dict[str, str]) -> None:
    """Print a recipe file as JSON after filling in parameters.

    The recipe is shown as it is, valid or not: use `zocalo recipe validate` to check.
    """
    loaded = Recipe.from_file(file).apply_parameters(parameters)
    click.echo(loaded.to_json(indent=2))


@recipe.command()
@click.argument("file", metavar="FILE")
@click.option("--mermaid", is_flag=True, help="Write a Mermaid flowchart, not DOT.")
@site_options
def graph(site: SiteOptions, file: str, mermaid: bool) -> None:
    """Draw a recipe file as a Graphviz DOT digraph (or a Mermaid flowchart).

    Error links are dashed; edges carry the names of named outputs.
    """
    loaded = Recipe.from_file(file)
    problems: list[RecipeProblem] = loaded.problems()
    if problems:
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        message = (
            f"recipe file {file!r} is invalid ({count}, the first: {problems[0]}); "
            f"run 'zocalo recipe validate {file}' to list them"
        )
        raise RecipeError(message)
    click.echo(to_mermaid(loaded) if mermaid else to_dot(loaded), nl=False)
