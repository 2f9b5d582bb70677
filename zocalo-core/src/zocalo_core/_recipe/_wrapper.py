"""The recipe wrapper: how a service reads its step and sends results along a recipe."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from zocalo_core._errors import RecipeError
from zocalo_core._recipe._envelope import (
    RECIPE_ID_KEY,
    build_envelope,
    parse_envelope,
    recipe_headers,
)
from zocalo_core._recipe._model import Recipe, RecipeSource
from zocalo_core._recipe._validate import is_node_id

logger = logging.getLogger(__name__)


class RecipeTransport(Protocol):
    """The two transport methods the wrapper uses (see `zocalo_core.transport`)."""

    def send(
        self,
        queue: str,
        body: Any,
        *,
        headers: dict[str, Any] | None = ...,
        delay: float | None = ...,
        expiration: float | None = ...,
        priority: int | None = ...,
        transaction: Any = ...,
        exchange: str | None = ...,
    ) -> object: ...

    def broadcast(
        self,
        topic: str,
        body: Any,
        *,
        headers: dict[str, Any] | None = ...,
        delay: float | None = ...,
        expiration: float | None = ...,
        transaction: Any = ...,
    ) -> object: ...


class RecipeMessage(Protocol):
    """What the wrapper reads from a received message."""

    @property
    def body(self) -> Any: ...

    @property
    def headers(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class _SendOptions:
    headers: Mapping[str, Any] | None = None
    delay: float | None = None
    expiration: float | None = None
    priority: int | None = None
    transaction: Any = None


class RecipeWrapper:
    """One step of a running recipe, or a recipe about to be started.

    Build it from a received message (`message=`) to handle that step, or from a recipe
    (`recipe=`) to start it. `recipe_step` is a copy of the current node's body (empty
    when starting): a service may read or change it without changing what is sent on.
    `transaction`, when set, is used by every send that is not given a `transaction=`
    of its own (the service base sets it to the transaction of the message handled).
    """

    def __init__(
        self,
        *,
        transport: RecipeTransport,
        message: RecipeMessage | None = None,
        recipe: RecipeSource = None,
        environment: Mapping[str, Any] | None = None,
        transaction: Any = None,
    ) -> None:
        if (message is None) == (recipe is None):
            text = "RecipeWrapper needs exactly one of message= (a received recipe "
            text += "message) or recipe= (a recipe to start)"
            raise RecipeError(text)
        self.transport = transport
        self.message = message
        self.transaction = transaction
        self.default_channel: str | None = None
        if message is not None:
            envelope = parse_envelope(message.body)
            self.recipe = envelope.recipe
            self.recipe_pointer: int | None = envelope.recipe_pointer
            self.recipe_path: list[int] = envelope.recipe_path
            self.environment: dict[str, Any] = envelope.environment
            self.payload: Any = envelope.payload
            # Routing reads a private copy, so a service that edits recipe_step
            # cannot change where its messages go.
            self._step: dict[str, Any] | None = self.recipe[self.recipe_pointer]
            self.recipe_step: dict[str, Any] = self.recipe[self.recipe_pointer]
        else:
            self.recipe = Recipe(recipe)
            self.recipe_pointer = None
            self.recipe_path = []
            self.environment = {}
            self.payload = None
            self._step = None
            # Empty rather than None, so handlers need no None check to read it.
            self.recipe_step = {}
        if environment is not None:
            self.environment = dict(environment)

    @property
    def recipe_id(self) -> Any:
        """`environment["ID"]`, or None when the recipe has no ID (yet)."""
        return self.environment.get(RECIPE_ID_KEY)

    def set_default_channel(self, name: str | None) -> None:
        """Make `send()` use the named output `name` on steps with named outputs."""
        self.default_channel = name

    def send(
        self,
        payload: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
    ) -> None:
        """Send `payload` to the step's unnamed outputs, or to the default channel."""
        options = _SendOptions(headers, delay, expiration, priority, transaction)
        step = self._require_step("send")
        outputs = step.get("output")
        if isinstance(outputs, Mapping):
            if self.default_channel is None:
                logger.warning(
                    "%s has only named outputs (%s) and no default channel, so send() "
                    "sent nothing; use send_to(name) or set_default_channel(name)",
                    self._describe_step(),
                    ", ".join(map(repr, outputs)),
                )
                return
            self._send_named(self.default_channel, payload, options)
            return
        if not outputs:
            logger.debug("%s has no outputs; nothing to send", self._describe_step())
            return
        self._send_nodes(_targets(outputs), payload, self._next_path(), options)

    def send_to(
        self,
        output_name: str,
        payload: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
    ) -> None:
        """Send `payload` to the step's output named `output_name`.

        A name the step does not have is logged as a WARNING and nothing is sent.
        """
        options = _SendOptions(headers, delay, expiration, priority, transaction)
        self._require_step("send_to")
        self._send_named(output_name, payload, options)

    def send_error(
        self,
        payload: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
    ) -> None:
        """Send `payload` to the step's `error` links.

        A step without its own `error` links uses the recipe's top-level `error` nodes;
        with neither, a WARNING is logged and nothing is sent.
        """
        options = _SendOptions(headers, delay, expiration, priority, transaction)
        step = self._require_step("send_error")
        targets = _targets(step.get("error"))
        if not targets and "error" in self.recipe:
            targets = _targets(self.recipe["error"])
        if not targets:
            logger.warning(
                "%s has no error links and the recipe no 'error' nodes, so "
                "send_error() sent nothing",
                self._describe_step(),
            )
            return
        self._send_nodes(targets, payload, self._next_path(), options)

    def checkpoint(
        self,
        payload: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
    ) -> None:
        """Send `payload` back to this same step, without extending the recipe path.

        Without `delay` the step's `transport-delay` applies, as for any other send.
        """
        options = _SendOptions(headers, delay, expiration, priority, transaction)
        self._require_step("checkpoint")
        assert self.recipe_pointer is not None
        self._send_nodes([self.recipe_pointer], payload, self.recipe_path, options)

    def start(
        self,
        *,
        headers: Mapping[str, Any] | None = None,
        delay: float | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        transaction: Any = None,
    ) -> None:
        """Validate the recipe, then send every `start` payload to its node."""
        if self.recipe_pointer is not None:
            message = (
                f"cannot start the recipe of a message at {self._describe_step()}: it "
                "is already running; build a RecipeWrapper(recipe=...) to start one"
            )
            raise RecipeError(message)
        self.recipe.validate()
        options = _SendOptions(headers, delay, expiration, priority, transaction)
        for node_id, payload in self.recipe["start"]:
            self._send_nodes([node_id], payload, [], options)

    def _send_named(self, name: str, payload: Any, options: _SendOptions) -> None:
        assert self._step is not None
        outputs = self._step.get("output")
        if isinstance(outputs, Mapping) and name in outputs:
            targets = _targets(outputs[name])
        elif (
            outputs
            and not isinstance(outputs, Mapping)
            and name == self.default_channel
        ):
            targets = _targets(outputs)
        else:
            known = (
                ", ".join(map(repr, outputs)) if isinstance(outputs, Mapping) else ""
            )
            logger.warning(
                "%s has no output named %r (named outputs: %s); nothing was sent",
                self._describe_step(),
                name,
                known or "none",
            )
            return
        self._send_nodes(targets, payload, self._next_path(), options)

    def _send_nodes(
        self, targets: list[int], payload: Any, path: list[int], options: _SendOptions
    ) -> None:
        # Check every destination before sending to any, so a broken link never leaves
        # half of the messages sent outside a transaction.
        nodes = [(node_id, self._destination(node_id)) for node_id in targets]
        for node_id, node in nodes:
            self._deliver(node_id, node, payload, path, options)

    def _destination(self, node_id: int) -> Mapping[str, Any]:
        node = self.recipe.get(node_id)
        if not isinstance(node, Mapping):
            message = (
                f"{self._describe_step()} links to node {node_id!r}, which is not a "
                "node of the recipe; fix the recipe (zocalo recipe validate)"
            )
            raise RecipeError(message)
        return node

    def _deliver(
        self,
        node_id: int,
        node: Mapping[str, Any],
        payload: Any,
        path: list[int],
        options: _SendOptions,
    ) -> None:
        queue, topic = node.get("queue"), node.get("topic")
        if not queue and not topic:
            logger.warning(
                "node %d has neither a queue nor a topic; message from %s not sent",
                node_id,
                self._describe_step(),
            )
            return
        common = self._transport_options(node, options)
        if queue:
            logger.debug(
                "recipe %s: to node %d, queue %s", self.recipe_id, node_id, queue
            )
            body = self._body(node_id, payload, path)
            # A node's exchange routes its queue sends (EXCH-1); broadcasts have the
            # topic's own exchange.
            routing = {"exchange": node["exchange"]} if node.get("exchange") else {}
            self.transport.send(
                queue, body, priority=options.priority, **routing, **common
            )
        if topic:
            logger.debug(
                "recipe %s: to node %d, topic %s", self.recipe_id, node_id, topic
            )
            body = self._body(node_id, payload, path)
            # Headers are copied again so the two calls never share one dict.
            common["headers"] = recipe_headers(options.headers)
            self.transport.broadcast(topic, body, **common)

    def _transport_options(
        self, node: Mapping[str, Any], options: _SendOptions
    ) -> dict[str, Any]:
        # An explicit delay wins over the node's transport-delay; an explicit
        # transaction over the wrapper's.
        delay = options.delay
        if delay is None:
            delay = node.get("transport-delay")
        transaction = options.transaction
        if transaction is None:
            transaction = self.transaction
        return {
            "headers": recipe_headers(options.headers),
            "delay": delay,
            "expiration": options.expiration,
            "transaction": transaction,
        }

    def _body(self, node_id: int, payload: Any, path: list[int]) -> dict[str, Any]:
        return build_envelope(
            recipe=self.recipe,
            recipe_pointer=node_id,
            recipe_path=path,
            environment=self.environment,
            payload=payload,
        )

    def _require_step(self, action: str) -> dict[str, Any]:
        if self._step is None:
            message = (
                f"{action}() needs a wrapper built from a received recipe message; "
                "this one holds a recipe to start (use start() or start_recipe())"
            )
            raise RecipeError(message)
        return self._step

    def _next_path(self) -> list[int]:
        assert self.recipe_pointer is not None
        return [*self.recipe_path, self.recipe_pointer]

    def _describe_step(self) -> str:
        step = self._step or {}
        where = [
            f"{field} {step[field]!r}" for field in ("queue", "topic") if field in step
        ]
        suffix = f" ({', '.join(where)})" if where else ""
        return f"step {self.recipe_pointer}{suffix}"


def start_recipe(
    transport: RecipeTransport,
    recipe: RecipeSource,
    *,
    environment: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    delay: float | None = None,
    expiration: float | None = None,
    priority: int | None = None,
    transaction: Any = None,
) -> None:
    """Validate `recipe` and send each of its `start` payloads to its node.

    `environment` travels with every message of the recipe; its `ID` is the recipe ID.
    Nothing is added to it here: whoever starts a recipe assigns the ID.
    """
    wrapper = RecipeWrapper(transport=transport, recipe=recipe, environment=environment)
    wrapper.start(
        headers=headers,
        delay=delay,
        expiration=expiration,
        priority=priority,
        transaction=transaction,
    )


def _targets(links: Any) -> list[int]:
    # Named outputs may nest; every node id below a name is a destination.
    if links is None:
        return []
    if isinstance(links, Mapping):
        return [target for inner in links.values() for target in _targets(inner)]
    if isinstance(links, (list, tuple)):
        return [target for item in links for target in _targets(item)]
    if is_node_id(links):
        return [links]
    message = f"recipe link {links!r} is not a node id; fix the recipe"
    raise RecipeError(message)
