"""Recipe validation: every problem at once, each tied to the node it concerns."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from zocalo_core._errors import RecipeError

logger = logging.getLogger(__name__)

#: The two top-level keys that are not node ids.
SPECIAL_KEYS = ("start", "error")

#: (target node id, how the link is named in messages, e.g. "output 'done'").
Edge = tuple[int, str]


@dataclass(frozen=True)
class RecipeProblem:
    """One thing wrong with a recipe.

    `node` is the node id, `"start"` or `"error"` for those lists, another key (as text)
    for a top-level key that is not a node id, or None for the recipe as a whole.
    """

    node: int | str | None
    message: str

    @property
    def location(self) -> str:
        """Where the problem is, as it starts the problem's text."""
        if self.node is None:
            return "recipe"
        if isinstance(self.node, int):
            return f"node {self.node}"
        if self.node in SPECIAL_KEYS:
            return self.node
        return f"key {self.node!r}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class InvalidRecipeError(RecipeError):
    """A recipe failed validation; `problems` lists everything found."""

    def __init__(self, problems: list[RecipeProblem], what: str = "recipe") -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{what} is invalid ({count} {noun}):"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def is_node_id(key: object) -> bool:
    """Whether a (normalised) top-level key names a node: an integer, 0 or more."""
    return isinstance(key, int) and not isinstance(key, bool) and key >= 0


def find_problems(data: Mapping[Any, Any]) -> list[RecipeProblem]:
    """Every problem in a normalised recipe dict, in a stable, readable order."""
    if not data:
        message = "is empty; a recipe needs a 'start' list and at least one node"
        return [RecipeProblem(None, message)]
    nodes = {key: body for key, body in data.items() if is_node_id(key)}
    problems = list(_key_problems(data))
    problems += _start_problems(data, nodes)
    problems += _top_error_problems(data, nodes)
    for node_id in sorted(nodes):
        problems += _node_problems(node_id, nodes[node_id], nodes)
    edges = {node_id: list(node_edges(body, nodes)) for node_id, body in nodes.items()}
    problems += _cycle_problems(edges)
    problems += _reachability_problems(data, nodes, edges)
    return problems


def _key_problems(data: Mapping[Any, Any]) -> Iterator[RecipeProblem]:
    for key in data:
        if is_node_id(key) or key in SPECIAL_KEYS:
            continue
        message = (
            "is not a node id; top-level keys must be node ids (integers, 0 or more), "
            "'start' or 'error'"
        )
        yield RecipeProblem(str(key), message)


def _start_problems(
    data: Mapping[Any, Any], nodes: Mapping[int, Any]
) -> Iterator[RecipeProblem]:
    if "start" not in data:
        yield RecipeProblem("start", "is missing; add a list of [node, payload] pairs")
        return
    start = data["start"]
    if not isinstance(start, (list, tuple)):
        message = f"must be a list of [node, payload] pairs, got {_describe(start)}"
        yield RecipeProblem("start", message)
        return
    if not start:
        yield RecipeProblem("start", "is empty; add at least one [node, payload] pair")
    for position, entry in enumerate(start):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            message = f"entry {position} must be a [node, payload] pair, got {entry!r}"
            yield RecipeProblem("start", message)
            continue
        yield from _target_problems("start", f"entry {position}", entry[0], nodes)


def _top_error_problems(
    data: Mapping[Any, Any], nodes: Mapping[int, Any]
) -> Iterator[RecipeProblem]:
    if "error" not in data or data["error"] is None:
        return
    links = data["error"]
    if not isinstance(links, (list, tuple)):
        message = f"must be a node id or a list of node ids, got {_describe(links)}"
        yield RecipeProblem("error", message)
        return
    for target in links:
        yield from _target_problems("error", "", target, nodes)


def _node_problems(
    node_id: int, body: Any, nodes: Mapping[int, Any]
) -> Iterator[RecipeProblem]:
    if not isinstance(body, Mapping):
        message = f"must be a JSON object (a dict), got {_describe(body)}"
        yield RecipeProblem(node_id, message)
        return
    for field in ("queue", "topic", "exchange"):
        value = body.get(field)
        if field in body and (not isinstance(value, str) or not value):
            message = f"{field!r} must be a non-empty string, got {value!r}"
            yield RecipeProblem(node_id, message)
    if "transport-delay" in body and not _is_delay(body["transport-delay"]):
        message = (
            "'transport-delay' must be a number of seconds (0 or more), "
            f"got {body['transport-delay']!r}"
        )
        yield RecipeProblem(node_id, message)
    elif body.get("exchange") and not body.get("queue"):
        message = (
            "'exchange' routes a node's queue messages, and this node has no queue"
        )
        yield RecipeProblem(node_id, message)
    elif body.get("exchange") and body.get("transport-delay"):
        message = (
            "'exchange' and a 'transport-delay' above 0 cannot go together: a "
            "delayed message is not sent through an exchange"
        )
        yield RecipeProblem(node_id, message)
    for field in ("output", "error"):
        yield from _link_problems(node_id, field, body.get(field), nodes)


def _link_problems(
    owner: int, label: str, links: Any, nodes: Mapping[int, Any]
) -> Iterator[RecipeProblem]:
    if links is None:
        return
    if isinstance(links, Mapping):
        for name, inner in links.items():
            inner_label = _named_label(label, name)
            yield from _link_problems(owner, inner_label, inner, nodes)
        return
    if not isinstance(links, (list, tuple)):
        links = [links]
    for target in links:
        yield from _target_problems(owner, label, target, nodes)


def _target_problems(
    owner: int | str, label: str, target: Any, nodes: Mapping[int, Any]
) -> Iterator[RecipeProblem]:
    prefix = f"{label} links" if label else "links"
    if not is_node_id(target):
        yield RecipeProblem(owner, f"{prefix} to {target!r}, which is not a node id")
    elif target not in nodes:
        message = f"{prefix} to node {target}, which does not exist"
        yield RecipeProblem(owner, message)


def node_edges(body: Any, nodes: Mapping[int, Any]) -> Iterator[Edge]:
    """The well-formed links of one node body to nodes that exist, in recipe order."""
    if not isinstance(body, Mapping):
        return
    for field in ("output", "error"):
        yield from _walk_links(field, body.get(field), nodes)


def _walk_links(label: str, links: Any, nodes: Mapping[int, Any]) -> Iterator[Edge]:
    if isinstance(links, Mapping):
        for name, inner in links.items():
            yield from _walk_links(_named_label(label, name), inner, nodes)
    elif isinstance(links, (list, tuple)):
        for target in links:
            if is_node_id(target) and target in nodes:
                yield target, label
    elif is_node_id(links) and links in nodes:
        yield links, label


def _named_label(label: str, name: object) -> str:
    # Nested named outputs read as one path: output 'a/b'.
    if label.endswith("'"):
        return f"{label[:-1]}/{name}'"
    return f"{label} '{name}'"


def _cycle_problems(edges: Mapping[int, list[Edge]]) -> Iterator[RecipeProblem]:
    # Iterative depth-first search; every edge back into the current path closes one
    # cycle. An edge from a node to itself is a local loop, which recipes may use.
    finished: set[int] = set()
    for root in sorted(edges):
        if root in finished:
            continue
        path = [root]
        pending = [iter(edges[root])]
        while pending:
            edge = next(pending[-1], None)
            if edge is None:
                finished.add(path.pop())
                pending.pop()
                continue
            target, label = edge
            if target == path[-1] or target in finished:
                continue
            if target in path:
                yield _cycle_problem(path, target, label)
                continue
            path.append(target)
            pending.append(iter(edges[target]))


def _cycle_problem(path: list[int], target: int, label: str) -> RecipeProblem:
    loop = [*path[path.index(target) :], target]
    text = " -> ".join(str(node_id) for node_id in loop)
    message = (
        f"{label} links back to node {target}, forming the cycle {text}; "
        "only a link from a node to itself may loop"
    )
    return RecipeProblem(path[-1], message)


def _reachability_problems(
    data: Mapping[Any, Any], nodes: Mapping[int, Any], edges: Mapping[int, list[Edge]]
) -> Iterator[RecipeProblem]:
    seen: set[int] = set()
    todo = [
        target
        for target in _entry_points(data)
        if is_node_id(target) and target in nodes
    ]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        todo.extend(target for target, _ in edges[node_id])
    for node_id in sorted(set(nodes) - seen):
        message = (
            "is not reachable from 'start' or 'error'; link to it from another node "
            "or remove it"
        )
        yield RecipeProblem(node_id, message)


def _entry_points(data: Mapping[Any, Any]) -> Iterator[Any]:
    start = data.get("start")
    if isinstance(start, (list, tuple)):
        for entry in start:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                yield entry[0]
    errors = data.get("error")
    if isinstance(errors, (list, tuple)):
        yield from errors


def _is_delay(value: Any) -> bool:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number and value >= 0


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return "null" if value is None else repr(value)
