"""`ChannelHandle`: one pika channel, the steps that use it and what waits on it.

Used only on the I/O thread. A handle is made and opened at once and set up for its
purpose (publisher confirms, or AMQP transactions) before anything else uses it.
When the channel closes, whatever waits on it is told, so no chain hangs on a reply
that cannot come.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pika.exceptions
import pika.spec
from zocalo_core import TransportError

from zocalo_transport_pika._loop import OnDone, OnError, Step

logger = logging.getLogger(__name__)

# Returned messages nobody claims (a confirm that never came) must not pile up.
_MAX_RETURNED = 10_000


def guarded(function: Callable[..., None]) -> Callable[..., None]:
    """`function` for pika to call: an exception is logged, never raised into pika."""

    # No functools.wraps: this runs for every broker call, and wraps costs more than
    # the call itself.
    def call(*args: Any) -> None:
        try:
            function(*args)
        except Exception:
            logger.exception("A pika callback failed")

    return call


class Mode(str, enum.Enum):
    PLAIN = "plain"
    CONFIRM = "confirm"
    TRANSACTION = "transaction"


class ChannelHandle:
    """A pika channel on the I/O thread, for one purpose (`label` names it in logs)."""

    def __init__(self, connection: Any, label: str, mode: Mode = Mode.PLAIN) -> None:
        self.label = label
        self.mode = mode
        self.ready = False
        self.closed = False
        self.close_reason: BaseException | None = None
        #: True once `tx.select` went out: every later ack needs a commit.
        self.tx_mode = mode is Mode.TRANSACTION
        self._tokens = itertools.count()
        self._waiters: dict[int, tuple[OnDone, OnError]] = {}
        self._ready_waiters: list[tuple[OnDone, OnError]] = []
        self._close_waiters: list[OnDone] = []
        self._close_hooks: list[Callable[[ChannelHandle, BaseException], None]] = []
        self._next_tag = 0
        self._confirms: dict[int, tuple[str, OnDone, OnError]] = {}
        self._returned: dict[str, str] = {}
        self._bursts: collections.deque[
            tuple[Callable[[], Any], Callable[[], None] | None, OnDone, OnError]
        ] = collections.deque()
        self._committing = False
        self.channel: Any = connection.channel(on_open_callback=guarded(self._opened))
        self.channel.add_on_close_callback(guarded(self._on_closed))
        self.channel.add_on_return_callback(guarded(self._on_returned))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "ready" if self.ready else "opening"
        return f"<ChannelHandle {self.label} {state}>"

    # -- opening

    def _opened(self, channel: Any) -> None:
        if self.mode is Mode.CONFIRM:
            self.channel.confirm_delivery(
                ack_nack_callback=guarded(self._on_confirm),
                callback=guarded(lambda frame: self._set_ready()),
            )
        elif self.mode is Mode.TRANSACTION:
            self.channel.tx_select(callback=guarded(lambda frame: self._set_ready()))
        else:
            self._set_ready()

    def _set_ready(self) -> None:
        self.ready = True
        waiting, self._ready_waiters = self._ready_waiters, []
        for on_done, _ in waiting:
            on_done(self)

    def wait_ready(self) -> Step:
        """A step that ends once the channel is open and set up."""

        def step(on_done: OnDone, on_error: OnError) -> None:
            if self.closed:
                on_error(self.closed_error())
            elif self.ready:
                on_done(self)
            else:
                self._ready_waiters.append((on_done, on_error))

        return step

    # -- calls

    def call(self, start: Callable[[OnDone], None]) -> Step:
        """A step that runs `start(done)`, where pika calls `done` with the reply."""

        def step(on_done: OnDone, on_error: OnError) -> None:
            if self.closed or not self.ready:
                on_error(self.closed_error())
                return
            token = next(self._tokens)
            self._waiters[token] = (on_done, on_error)
            try:
                start(guarded(lambda *reply: self._fulfil(token, reply)))
            except BaseException:
                self._waiters.pop(token, None)
                raise

        return step

    def _fulfil(self, token: int, reply: tuple[Any, ...]) -> None:
        waiter = self._waiters.pop(token, None)
        if waiter is not None:
            waiter[0](reply[0] if reply else None)

    def closed_error(self) -> BaseException:
        if self.close_reason is not None:
            return self.close_reason
        error: BaseException = pika.exceptions.ChannelWrongStateError(
            f"{self.label} is not open"
        )
        return error

    # -- publishing

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        mandatory: bool,
    ) -> None:
        """Publish without waiting (for transactions, or no confirm wanted)."""
        if self.closed or not self.ready:
            raise self.closed_error()
        self.channel.basic_publish(exchange, routing_key, body, properties, mandatory)
        if self.mode is Mode.CONFIRM:
            self._next_tag += 1

    def publish_confirmed(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        mandatory: bool,
    ) -> Step:
        """A step that publishes and ends with the broker's confirm.

        It gives `None` when the message was routed, or the broker's reason when it
        was returned as unroutable; a nack from the broker is an error.
        """
        if self.mode is not Mode.CONFIRM:
            raise TransportError(f"{self.label} is not in publisher-confirm mode")

        def step(on_done: OnDone, on_error: OnError) -> None:
            if self.closed or not self.ready:
                on_error(self.closed_error())
                return
            self.channel.basic_publish(
                exchange, routing_key, body, properties, mandatory
            )
            self._next_tag += 1
            self._confirms[self._next_tag] = (
                str(properties.message_id),
                on_done,
                on_error,
            )

        return step

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        refused = isinstance(method, pika.spec.Basic.Nack)
        settled = [
            tag
            for tag in self._confirms
            if tag == method.delivery_tag
            or (method.multiple and tag <= method.delivery_tag)
        ]
        for tag in settled:
            message_id, on_done, on_error = self._confirms.pop(tag)
            returned = self._returned.pop(message_id, None)
            if refused:
                on_error(
                    TransportError(
                        f"RabbitMQ refused message {message_id} (basic.nack); it "
                        "was not stored: check the broker's logs and alarms"
                    )
                )
            else:
                on_done(returned)

    def _on_returned(
        self, channel: Any, method: Any, properties: Any, body: bytes
    ) -> None:
        if len(self._returned) >= _MAX_RETURNED:
            self._returned.pop(next(iter(self._returned)))
        reason = f"{method.reply_code} {method.reply_text}"
        self._returned[str(properties.message_id)] = reason

    def take_returned(self, message_ids: list[str]) -> dict[str, str]:
        """Which of `message_ids` came back unroutable, with the broker's reason."""
        return {
            message_id: self._returned.pop(message_id)
            for message_id in message_ids
            if message_id in self._returned
        }

    # -- transactions

    def commit(
        self, put: Callable[[], Any], check: Callable[[], None] | None = None
    ) -> Step:
        """A step that runs `put()` and then `tx.commit`; it ends with what `put`
        returned once RabbitMQ has committed.

        `put` publishes and settles without waiting. RabbitMQ closes a channel that
        gets any other command while it works on a commit, so the bursts of one
        channel go one after the other: each waits for the commit before it.
        `check()` runs just before `put()`; when it raises, nothing is put.
        """

        def step(on_done: OnDone, on_error: OnError) -> None:
            if self.closed or not self.ready:
                on_error(self.closed_error())
                return
            self._bursts.append((put, check, on_done, on_error))
            self._start_bursts()

        return step

    def _start_bursts(self) -> None:
        while self._bursts and not self._committing and not self.closed:
            put, check, on_done, on_error = self._bursts.popleft()
            try:
                if check is not None:
                    check()
            except BaseException as exc:
                on_error(exc)
                continue
            try:
                result = put()
            except BaseException as exc:
                # Part of the burst may be on the wire: closing the channel rolls
                # it back rather than letting the next commit take it along.
                self.close_soon()
                on_error(exc)
                continue
            self._committing = True
            self._send_commit(on_done, on_error, result)

    def _send_commit(self, on_done: OnDone, on_error: OnError, result: Any) -> None:
        def committed(frame: Any) -> None:
            self._committing = False
            on_done(result)
            self._start_bursts()

        def failed(exc: BaseException) -> None:
            self._committing = False
            on_error(exc)
            self._start_bursts()

        committing = self.call(lambda done: self.channel.tx_commit(callback=done))
        committing(committed, failed)

    # -- closing

    def add_close_hook(
        self, hook: Callable[[ChannelHandle, BaseException], None]
    ) -> None:
        self._close_hooks.append(hook)

    def close(self) -> Step:
        """A step that closes the channel (and ends at once if it is closed)."""

        def step(on_done: OnDone, on_error: OnError) -> None:
            if self.closed:
                on_done(None)
                return
            self._close_waiters.append(on_done)
            if not (self.channel.is_closing or self.channel.is_closed):
                self.channel.close()

        return step

    def close_soon(self) -> None:
        """Close the channel without waiting for the broker to confirm it."""
        if not (self.closed or self.channel.is_closing or self.channel.is_closed):
            self.channel.close()

    def _on_closed(self, channel: Any, reason: BaseException) -> None:
        self.closed = True
        self.ready = False
        self.close_reason = reason
        if not isinstance(reason, pika.exceptions.ChannelClosedByClient):
            logger.debug("The %s channel closed: %s", self.label, reason)
        waiting = [*self._ready_waiters, *self._waiters.values()]
        waiting += [(done, error) for _, done, error in self._confirms.values()]
        waiting += [(done, error) for _, _, done, error in self._bursts]
        self._ready_waiters, self._waiters, self._confirms = [], {}, {}
        self._bursts.clear()
        for _, on_error in waiting:
            on_error(reason)
        closing, self._close_waiters = self._close_waiters, []
        for on_done in closing:
            on_done(None)
        for hook in self._close_hooks:
            hook(self, reason)
