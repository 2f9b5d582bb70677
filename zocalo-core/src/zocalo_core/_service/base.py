"""The service base class: subscriptions declared in one place, one message at a time.

A service names its subscriptions in the class attribute `subscriptions`. By default
each message is handled inside a transaction bound to its subscription: the handler's
sends and the acknowledgement are committed together, so a crash between them can
neither lose the message nor send its results twice. A handler that raises has its
message nacked (the broker redelivers it, and after the delivery limit dead-letters it)
and the service goes on with the next message.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from zocalo_core._errors import (
    DisconnectedError,
    RecipeError,
    TransportError,
    ZocaloError,
)
from zocalo_core._recipe import RecipeWrapper, is_recipe_message

if TYPE_CHECKING:
    from zocalo_core.transport import Message, Transaction, Transport

logger = logging.getLogger(__name__)


class Handling(enum.Enum):
    """How a subscription's messages are acknowledged."""

    #: Ack and every send of the handler commit together in one transaction.
    TRANSACTION = "transaction"
    #: Ack once the handler returns, with no transaction around the sends.
    ACK_AFTER = "ack-after"
    #: The handler acknowledges by itself, for example after writing a batch.
    MANUAL = "manual"


@dataclass(frozen=True)
class Subscribe:
    """One queue a service consumes.

    `handler` names a method of the service. On a `recipe` subscription (the default)
    it is called as `handler(recipe_wrapper, message)` and a message without the recipe
    header is rejected; otherwise as `handler(message)`.
    """

    queue: str
    handler: str
    recipe: bool = True
    prefetch: int = 1
    handling: Handling = Handling.TRANSACTION


@dataclass(frozen=True)
class SubscribeBroadcast:
    """A broadcast topic a service listens to; `handler(message)` gets each message."""

    topic: str
    handler: str


class RejectMessage(ZocaloError):
    """Raised by a handler for a message that no retry can fix: it is dead-lettered."""


class Service:
    """The base class of every Zocalo service.

    Subclasses set `name` (the name `zocalo service -s` and status messages use; the
    class name by default) and `subscriptions`, and may override `on_start`,
    `on_stopping`, `on_stop` and `on_idle` (called after `idle_timeout` seconds without
    a message).
    """

    name: ClassVar[str] = ""
    subscriptions: ClassVar[Sequence[Subscribe | SubscribeBroadcast]] = ()
    idle_timeout: ClassVar[float | None] = None

    def __init__(
        self,
        transport: Transport,
        *,
        site: Any = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        self.transport = transport
        self.site = site
        self.environment = dict(environment or {})
        self._shutdown_requested: Callable[[], None] | None = None
        self._transaction: Transaction | None = None
        self._log_extra: dict[str, Any] = {"service": self.service_name()}
        self.log = logging.LoggerAdapter(
            logging.getLogger(type(self).__module__), self._log_extra
        )

    @classmethod
    def service_name(cls) -> str:
        return cls.name or cls.__name__

    # Hooks for subclasses.

    def on_start(self) -> None:
        """Called once the transport is connected, before any message is handled."""

    def on_stopping(self) -> None:
        """Called when the service is about to stop, while it still holds its messages.

        A batching service flushes here: its unacknowledged messages can still be
        acked. After this the subscriptions end and the broker takes back whatever is
        left unacknowledged.
        """

    def on_stop(self) -> None:
        """Called when the service has stopped: its subscriptions have ended."""

    def on_idle(self) -> None:
        """Called after `idle_timeout` seconds in which no message arrived."""

    # Helpers for handlers.

    @property
    def transaction(self) -> Transaction | None:
        """The transaction of the message being handled, or None outside one."""
        return self._transaction

    def send(self, queue: str, body: Any, **options: Any) -> None:
        """Send to a queue, inside the current message's transaction if there is one."""
        options.setdefault("transaction", self._transaction)
        self.transport.send(queue, body, **options)

    def request_shutdown(self) -> None:
        """Ask the runner to stop the service once the current message is handled."""
        if self._shutdown_requested is not None:
            self._shutdown_requested()

    # Message handling, called by the runner one message at a time.

    def handle_message(self, declaration: Subscribe, message: Message) -> None:
        """Handle one message of `declaration` and settle it as the declaration says."""
        self._log_extra.update(queue=declaration.queue, message_id=message.message_id)
        self._log_extra.pop("recipe_ID", None)
        try:
            if declaration.recipe and not is_recipe_message(message.headers):
                self._reject_without_recipe(declaration, message)
            elif declaration.handling is Handling.TRANSACTION:
                self._handle_in_transaction(declaration, message)
            else:
                self._handle_plainly(declaration, message)
        finally:
            for key in ("queue", "message_id", "recipe_ID"):
                self._log_extra.pop(key, None)

    def handle_broadcast(
        self, declaration: SubscribeBroadcast, message: Message
    ) -> None:
        try:
            getattr(self, declaration.handler)(message)
        except Exception:
            self.log.exception(
                "handler %s failed on a broadcast on %s",
                declaration.handler,
                declaration.topic,
            )

    def _reject_without_recipe(self, declaration: Subscribe, message: Message) -> None:
        reason = f"message on recipe queue {declaration.queue!r} has no recipe header"
        self.log.error("rejecting message %s: %s", message.message_id, reason)
        self.transport.reject(message, reason)

    def _call_handler(
        self, declaration: Subscribe, message: Message, transaction: Transaction | None
    ) -> None:
        handler = getattr(self, declaration.handler)
        if not declaration.recipe:
            handler(message)
            return
        try:
            wrapper = RecipeWrapper(
                message=message, transport=self.transport, transaction=transaction
            )
        except RecipeError as exc:
            reason = f"malformed recipe message on {declaration.queue!r}: {exc}"
            raise RejectMessage(reason) from exc
        if wrapper.recipe_id is not None:
            self._log_extra["recipe_ID"] = wrapper.recipe_id
        handler(wrapper, message)

    def _handle_in_transaction(self, declaration: Subscribe, message: Message) -> None:
        transaction = self.transport.transaction_begin(message.subscription)
        self._transaction = transaction
        try:
            self._call_handler(declaration, message, transaction)
            self.transport.ack(message, transaction=transaction)
        except BaseException as exc:
            self.transport.transaction_abort(transaction)
            self._settle_failure(declaration, message, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._commit_or_return(declaration, message, transaction)
        finally:
            self._transaction = None

    def _commit_or_return(
        self, declaration: Subscribe, message: Message, transaction: Transaction
    ) -> None:
        try:
            self.transport.transaction_commit(transaction)
        except DisconnectedError:
            raise
        except TransportError as exc:
            # Nothing of the transaction took effect, so the message is still ours
            # to return (or, delivered before a reconnection, comes again anyway).
            self.log.error(
                "could not commit the handling of message %s from %s: %s",
                message.message_id,
                declaration.queue,
                exc,
            )
            self.transport.nack(message)

    def _handle_plainly(self, declaration: Subscribe, message: Message) -> None:
        try:
            self._call_handler(declaration, message, None)
        except BaseException as exc:
            self._settle_failure(declaration, message, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if declaration.handling is Handling.ACK_AFTER:
            self.transport.ack(message)

    def _settle_failure(
        self, declaration: Subscribe, message: Message, exc: BaseException
    ) -> None:
        if isinstance(exc, RejectMessage):
            self.log.error("rejecting message %s: %s", message.message_id, exc)
            self.transport.reject(message, str(exc))
            return
        self.log.error(
            "handler %s failed on message %s from %s; returning it to the queue",
            declaration.handler,
            message.message_id,
            declaration.queue,
            exc_info=exc,
        )
        self.transport.nack(message)
