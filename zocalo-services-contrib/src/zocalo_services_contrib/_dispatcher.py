"""The Dispatcher: turns processing requests into running recipes.

It consumes `processing_recipe`. A request names recipes from the site's recipe
directory and/or brings a `custom_recipe`, with `parameters`; the Dispatcher waits
until every readiness check agrees, runs the site's filters, builds the recipe and
starts it, all in the transaction that acknowledges the request. A request that can
never work is dead-lettered at once with the reason; one that failed for a reason
that may pass (a filter's database is down) goes back to the queue.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from zocalo_core import (
    RECIPE_HEADER,
    Message,
    RecipeError,
    RejectMessage,
    Service,
    ServicePlugin,
    Subscribe,
    Transport,
    ZocaloError,
    get_registry,
    is_recipe_message,
    parse_envelope,
    start_recipe,
)
from zocalo_core.transport import Capability

from zocalo_services_contrib._dispatcher_logbook import LOGBOOK_KEY, Logbook
from zocalo_services_contrib._dispatcher_request import (
    FILTER_KIND,
    READINESS_KIND,
    RECIPE_DIRECTORY_KEY,
    RECIPE_ID_PARAMETER,
    DispatcherFilterError,
    InvalidRequestError,
    PreparedRequest,
    RecordSource,
    normalise_request,
    prepare_request,
    recipe_directory,
)

__all__ = [
    "DISPATCHER_QUEUE",
    "DISPATCHER_SERVICE",
    "LOGBOOK_KEY",
    "RECIPE_DIRECTORY_KEY",
    "Dispatcher",
    "DispatcherFilterError",
    "InvalidRequestError",
    "PreparedRequest",
    "ReadinessCheckError",
    "normalise_request",
    "prepare_request",
    "recipe_directory",
]

logger = logging.getLogger(__name__)

#: The queue the Dispatcher consumes, where `zocalo go` sends requests.
DISPATCHER_QUEUE = "processing_recipe"

#: Request parameters that steer waiting for readiness, with their defaults.
TIMEOUT_PARAMETER = "dispatcher_timeout"
DELAY_PARAMETER = "dispatcher_delay"
EXPIRATION_PARAMETER = "dispatcher_expiration"
ERROR_QUEUE_PARAMETER = "dispatcher_error_queue"
DEFAULT_TIMEOUT = 120.0
DEFAULT_DELAY = 2.0


class ReadinessCheckError(ZocaloError):
    """A readiness check failed on a request; another try may succeed."""


@dataclass(frozen=True)
class _Wait:
    """How long a request that is not ready may still wait, from its parameters."""

    expiration: float
    delay: float
    error_queue: str | None


class Dispatcher(Service):
    """Starts the recipe of every processing request on `processing_recipe`.

    `registry` gives the filters and readiness checks; None means the installed
    plugins (`zocalo_core.get_registry()`). `default_timeout` and `default_delay`
    apply to requests whose parameters do not say how long to wait for readiness.
    Tests set these on a subclass.
    """

    name = "Dispatcher"
    subscriptions = [Subscribe(DISPATCHER_QUEUE, "process", recipe=False)]
    registry: ClassVar[RecordSource | None] = None
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    default_delay: ClassVar[float] = DEFAULT_DELAY

    def __init__(
        self,
        transport: Transport,
        *,
        site: Any = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(transport, site=site, environment=environment)
        self.plugins: RecordSource = (
            self.registry if self.registry is not None else get_registry()
        )
        self.logbook = Logbook(None)

    def on_start(self) -> None:
        # A broken recipe directory setting stops the service here, once, instead
        # of failing every request.
        directory = recipe_directory(self.site)
        if directory is None:
            self.log.warning(
                "no recipe directory: storage key %s is not set, so requests can "
                "only bring custom recipes",
                RECIPE_DIRECTORY_KEY,
            )
        else:
            self.log.info("recipes from %s", directory)
        self.logbook = Logbook.from_site(self.site)
        filters = [record.name for record in self.plugins.records(FILTER_KIND)]
        checks = [record.name for record in self.plugins.records(READINESS_KIND)]
        self.log.info("filters: %s; readiness checks: %s", filters, checks)
        if checks and Capability.DELAY not in self.transport.capabilities:
            self.log.warning(
                "the %s transport cannot delay messages, so requests that are not "
                "ready yet will be rejected instead of waiting",
                self.transport.name,
            )

    def process(self, message: Message) -> None:
        """Handle one request: wait for it to be ready, or start its recipe."""
        started = time.monotonic()
        try:
            body = normalise_request(self._request_of(message))
        except InvalidRequestError as exc:
            raise RejectMessage(str(exc)) from exc
        recipe_id = body["parameters"][RECIPE_ID_PARAMETER]
        log = logging.LoggerAdapter(
            self.log.logger, {**(self.log.extra or {}), "recipe_ID": recipe_id}
        )
        if not self._ready(body, message, log):
            return
        prepared = self._prepare(body, log)
        start_recipe(
            self.transport,
            prepared.recipe,
            environment={"ID": recipe_id},
            transaction=self.transaction,
        )
        self.logbook.write(
            recipe_id,
            headers=message.headers,
            incoming=message.body,
            parsed=prepared.request,
            recipe=prepared.recipe.to_dict(),
        )
        log.info(
            "started recipe %s (%s) in %.4f s",
            recipe_id,
            _describe(prepared.request),
            time.monotonic() - started,
        )

    def _request_of(self, message: Message) -> Any:
        # A recipe step may point at this queue to start a new recipe; then the
        # request is the payload of the step's message.
        if not is_recipe_message(message.headers):
            return message.body
        try:
            envelope = parse_envelope(message.body)
        except RecipeError as exc:
            reason = f"malformed recipe message on {DISPATCHER_QUEUE!r}: {exc}"
            raise RejectMessage(reason) from exc
        self.log.info(
            "recipe %s asks at step %d for a new recipe",
            envelope.recipe_id,
            envelope.recipe_pointer,
        )
        return envelope.payload

    def _prepare(
        self, body: dict[str, Any], log: logging.LoggerAdapter[logging.Logger]
    ) -> PreparedRequest:
        try:
            return prepare_request(body, site=self.site, registry=self.plugins)
        except InvalidRequestError as exc:
            raise RejectMessage(str(exc)) from exc
        except DispatcherFilterError as exc:
            log.error("%s; the request goes back to the queue", exc)
            raise

    # Readiness.

    def _ready(
        self,
        body: dict[str, Any],
        message: Message,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> bool:
        """Whether every readiness check agrees; if not, the request waits or ends."""
        waiting_for = self._first_not_ready(body, log)
        if waiting_for is None:
            return True
        try:
            wait = _wait_settings(
                body["parameters"],
                now=time.time(),
                timeout=self.default_timeout,
                delay=self.default_delay,
            )
        except InvalidRequestError as exc:
            raise RejectMessage(str(exc)) from exc
        body["parameters"][EXPIRATION_PARAMETER] = wait.expiration
        remaining = wait.expiration - time.time()
        if remaining > 0:
            self._retry_later(body, message, waiting_for, min(wait.delay, remaining))
            log.info("request not ready yet (%s); checking again later", waiting_for)
        elif wait.error_queue:
            self.send(wait.error_queue, body, headers=_carried(message.headers))
            log.warning(
                "request still not ready (%s) at its expiry; sent it to %s",
                waiting_for,
                wait.error_queue,
            )
        else:
            reason = (
                f"the request was still not ready when its wait ended (readiness "
                f"check {waiting_for!r}); raise the parameter {TIMEOUT_PARAMETER!r} "
                f"or set {ERROR_QUEUE_PARAMETER!r} to keep such requests"
            )
            raise RejectMessage(reason)
        return False

    def _first_not_ready(
        self, body: dict[str, Any], log: logging.LoggerAdapter[logging.Logger]
    ) -> str | None:
        for check in self.plugins.records(READINESS_KIND):
            try:
                ready = check.function(
                    copy.deepcopy(body), copy.deepcopy(body["parameters"])
                )
            except Exception as exc:
                text = f"readiness check {check.name!r} failed: {exc}"
                log.error("%s; the request goes back to the queue", text)
                raise ReadinessCheckError(text) from exc
            if not ready:
                return str(check.name)
        return None

    def _retry_later(
        self, body: dict[str, Any], message: Message, check: str, delay: float
    ) -> None:
        if Capability.DELAY not in self.transport.capabilities:
            reason = (
                f"the request is not ready yet (readiness check {check!r}), and the "
                f"{self.transport.name} transport cannot delay messages, so the "
                "Dispatcher cannot wait for it; use a transport with the 'delay' "
                "capability"
            )
            raise RejectMessage(reason)
        self.send(
            DISPATCHER_QUEUE, body, headers=_carried(message.headers), delay=delay
        )


def _wait_settings(
    parameters: Mapping[str, Any], *, now: float, timeout: float, delay: float
) -> _Wait:
    """The wait of a request from its parameters, `timeout` and `delay` the defaults."""
    timeout = _seconds(parameters, TIMEOUT_PARAMETER, timeout)
    delay = _seconds(parameters, DELAY_PARAMETER, delay)
    if delay <= 0:
        message = f"the request's parameter {DELAY_PARAMETER!r} must be above 0"
        raise InvalidRequestError(message)
    expiration = _seconds(parameters, EXPIRATION_PARAMETER, now + timeout)
    error_queue = parameters.get(ERROR_QUEUE_PARAMETER)
    if error_queue is not None and not isinstance(error_queue, str):
        message = (
            f"the request's parameter {ERROR_QUEUE_PARAMETER!r} must be a queue name, "
            f"not {error_queue!r}"
        )
        raise InvalidRequestError(message)
    return _Wait(expiration, delay, error_queue or None)


def _seconds(parameters: Mapping[str, Any], key: str, default: float) -> float:
    # `zocalo go -s key=value` sends every value as text, so numbers in text count.
    value = parameters.get(key)
    if value is None:
        return default
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        seconds = float(value)
    except (TypeError, ValueError) as exc:
        message = f"the request's parameter {key!r} must be seconds, not {value!r}"
        raise InvalidRequestError(message) from exc
    if not math.isfinite(seconds) or seconds < 0:
        message = f"the request's parameter {key!r} must be 0 or more, not {value!r}"
        raise InvalidRequestError(message)
    return seconds


def _carried(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a re-sent request keeps: the sender's, not the recipe or DLQ ones."""
    return {
        key: value
        for key, value in headers.items()
        if key != RECIPE_HEADER and not key.startswith("x-zocalo-")
    }


def _describe(request: Mapping[str, Any]) -> str:
    parts = []
    if request.get("custom_recipe"):
        parts.append("custom recipe")
    parts += [f"recipe {name!r}" for name in request.get("recipes") or []]
    return ", ".join(parts)


DISPATCHER_SERVICE = ServicePlugin(
    "Dispatcher",
    Dispatcher,
    "Start the recipe of each processing request on processing_recipe",
)
