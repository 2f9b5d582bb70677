"""Drawing a recipe: Graphviz DOT and Mermaid flowcharts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from zocalo_core._recipe._model import Recipe
from zocalo_core._recipe._validate import is_node_id

logger = logging.getLogger(__name__)

#: (source, target, label, is an error link); source is a node id, "start" or "error".
Link = tuple[int | str, int, str, bool]


def recipe_links(recipe: Recipe) -> Iterator[Link]:
    """Every link of a recipe, start and top-level error entries first."""
    start = recipe.get("start", [])
    for entry in start:
        if (
            isinstance(entry, (list, tuple))
            and len(entry) == 2
            and is_node_id(entry[0])
        ):
            yield "start", entry[0], "", False
    for target in recipe.get("error", []):
        if is_node_id(target):
            yield "error", target, "", True
    for node_id, body in recipe.nodes():
        if not isinstance(body, Mapping):
            continue
        for label, target in _named_links(body.get("output")):
            yield node_id, target, label, False
        for label, target in _named_links(body.get("error")):
            yield node_id, target, label or "error", True


def _named_links(links: Any, label: str = "") -> Iterator[tuple[str, int]]:
    if isinstance(links, Mapping):
        for name, inner in links.items():
            yield from _named_links(inner, f"{label}/{name}" if label else str(name))
    elif isinstance(links, (list, tuple)):
        for target in links:
            if is_node_id(target):
                yield label, target
    elif is_node_id(links):
        yield label, links


def node_label(node_id: int, body: Any) -> str:
    """A node's id with its queue and topic, one per line."""
    lines = [str(node_id)]
    if isinstance(body, Mapping):
        lines += [f"{key}: {body[key]}" for key in ("queue", "topic") if key in body]
    return "\n".join(lines)


def to_dot(recipe: Recipe) -> str:
    """The recipe as a Graphviz digraph; error links are dashed."""
    lines = ["digraph recipe {", "  rankdir=TB;", "  node [shape=box];"]
    lines.append('  start [shape=circle, label="start"];')
    if "error" in recipe:
        lines.append('  error [shape=octagon, label="error"];')
    for node_id, body in recipe.nodes():
        lines.append(f"  n{node_id} [label={_dot_text(node_label(node_id, body))}];")
    for source, target, label, is_error in recipe_links(recipe):
        attributes = []
        if label:
            attributes.append(f"label={_dot_text(label)}")
        if is_error:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_dot_id(source)} -> n{target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(recipe: Recipe) -> str:
    """The recipe as a Mermaid flowchart; error links are dotted."""
    lines = ["flowchart TD", "  start((start))"]
    if "error" in recipe:
        lines.append("  error{{error}}")
    for node_id, body in recipe.nodes():
        text = _mermaid_text(node_label(node_id, body)).replace("\n", "<br/>")
        lines.append(f'  n{node_id}["{text}"]')
    for source, target, label, is_error in recipe_links(recipe):
        arrow = "-.->" if is_error else "-->"
        edge_label = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"  {_dot_id(source)} {arrow}{edge_label} n{target}")
    return "\n".join(lines) + "\n"


def _dot_id(source: int | str) -> str:
    return f"n{source}" if isinstance(source, int) else source


def _dot_text(text: str) -> str:
    # A JSON string is also a valid DOT quoted string for our purposes: quotes and
    # backslashes escaped, newlines as \n, which DOT shows as line breaks.
    return json.dumps(text, ensure_ascii=False)


def _mermaid_text(text: str) -> str:
    # Mermaid has no backslash escapes inside quoted labels, only entity codes.
    replacements = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;"}
    return "".join(replacements.get(character, character) for character in text)
