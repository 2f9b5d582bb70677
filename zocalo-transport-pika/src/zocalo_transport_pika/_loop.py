"""The I/O thread: the one thread that touches pika, and how other threads use it.

pika's `SelectConnection` is asynchronous: every broker call takes a completion
callback. Work for the I/O thread is written as a *chain*, a generator that yields
steps; a step starts one asynchronous call and is resumed with its result (or has the
error thrown into it). Other threads hand a chain to `IoThread.call` and wait for its
result, always with a timeout. An exception never escapes into pika's loop: it would
stop the loop, and with it the heartbeats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import pika.exceptions
from pika.adapters.select_connection import IOLoop
from zocalo_core import DisconnectedError, TransportError, ZocaloError

logger = logging.getLogger(__name__)

T = TypeVar("T")

OnDone = Callable[[Any], None]
OnError = Callable[[BaseException], None]
#: Start one asynchronous call; report its result to `on_done` or its failure.
Step = Callable[[OnDone, OnError], None]
Chain = Generator[Step, Any, T]

_STOP_TIMEOUT = 5.0
#: The longest a deferred task (`IoThread.defer`) waits when nothing else wakes the
#: I/O thread: one sweep period.
DEFER_BOUND = 0.025


class _ChainRunner:
    """Drives one chain. Steps that complete at once are looped over, not recursed
    into, so a long chain of such steps cannot exhaust the stack."""

    def __init__(
        self,
        chain: Chain[Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._chain = chain
        self._on_result = on_result
        self._on_error = on_error
        self._pending: list[Callable[[], Step]] = []
        self._running = False
        self._finished = False

    def resume(self, action: Callable[[], Step]) -> None:
        self._pending.append(action)
        if self._running:
            return
        self._running = True
        try:
            while self._pending and not self._finished:
                self._advance(self._pending.pop())
        finally:
            self._running = False

    def _advance(self, action: Callable[[], Step]) -> None:
        try:
            step = action()
        except StopIteration as stop:
            self._finished = True
            self._on_result(stop.value)
            return
        except BaseException as exc:
            self._finished = True
            self._on_error(exc)
            return
        resumed = False

        def once(next_action: Callable[[], Step]) -> None:
            nonlocal resumed
            if not resumed:
                resumed = True
                self.resume(next_action)

        chain = self._chain
        try:
            step(
                lambda value: once(lambda: chain.send(value)),
                lambda exc: once(lambda: chain.throw(exc)),
            )
        except BaseException as exc:
            failure = exc
            once(lambda: chain.throw(failure))


def run_chain(
    chain: Chain[T],
    on_result: Callable[[T], None],
    on_error: Callable[[BaseException], None],
) -> None:
    """On the I/O thread: drive `chain` to its end, then report exactly once."""
    _ChainRunner(chain, on_result, on_error).resume(lambda: chain.send(None))


def describe(what: str | Callable[[], str]) -> str:
    """The text of a call's description, which may be given as a function."""
    return what if isinstance(what, str) else what()


def as_transport_error(
    exc: BaseException, what: str | Callable[[], str]
) -> ZocaloError:
    """The error a caller sees when the I/O thread failed to `what`."""
    what = describe(what)
    if isinstance(exc, ZocaloError):
        return exc
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return TransportError(
            f"could not {what}: RabbitMQ refused it and closed the channel "
            f"({exc.reply_code} {exc.reply_text})"
        )
    if isinstance(
        exc, (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelClosed)
    ):
        return DisconnectedError(f"could not {what}: the connection was lost ({exc})")
    return TransportError(f"could not {what}: {type(exc).__name__}: {exc}")


class _Outcome:
    """The result of one call into the I/O thread, which one other thread waits for.

    Cheaper than a `concurrent.futures.Future`: a waiter costs one lock, and setting
    the outcome one release. The first outcome set wins; later ones are ignored.
    """

    __slots__ = ("_guard", "_ready", "error", "settled", "value")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._ready = threading.Lock()
        self._ready.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.settled = False

    def settle(self, value: Any, error: BaseException | None) -> None:
        with self._guard:
            if self.settled:
                return
            self.settled = True
            self.value = value
            self.error = error
        self._ready.release()

    def wait(self, timeout: float) -> bool:
        """True once an outcome is set; False when `timeout` passes first."""
        return self._ready.acquire(timeout=max(timeout, 0.0))


def _run_guarded(function: Callable[[], None]) -> None:
    """Run a task on the I/O thread; its failure is logged, never raised into pika."""
    try:
        function()
    except Exception:
        logger.exception("A pika I/O task failed")


class IoThread:
    """A thread running one pika `IOLoop`, and bounded calls into it."""

    def __init__(self, name: str) -> None:
        self.ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self._outstanding: set[_Outcome] = set()
        self._stopped = False
        #: Tasks handed over without waking the thread; the next submission, a
        #: `flush` or the sweep takes them along, in order (guarded by `_lock`).
        self._deferred: list[tuple[Callable[[], None], Callable[[], None]]] = []
        #: Whether a sweep is armed on the loop; only then may tasks be deferred.
        self._sweeping = False

    def start(self) -> None:
        self._thread.start()

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        try:
            self.ioloop.start()
        except BaseException:
            logger.exception("The pika I/O loop stopped on an error")
        finally:
            with self._lock:
                self._stopped = True
                dropped, self._deferred = self._deferred, []
            for _, on_dropped in dropped:
                _run_guarded(on_dropped)
            self.fail_outstanding(DisconnectedError("the pika I/O thread has stopped"))
            try:
                self.ioloop.close()
            except Exception:
                logger.debug("Could not close the pika I/O loop", exc_info=True)

    def submit(self, function: Callable[[], None]) -> bool:
        """Run `function()` soon on the I/O thread; False if the thread has ended.

        Deferred tasks go first, so the thread still takes work in the order it was
        handed over.
        """
        with self._lock:
            if self._stopped:
                return False
            batch = self._take_deferred()
            batch.append(function)
            self.ioloop.add_callback_threadsafe(lambda: self._run_batch(batch))
        return True

    def defer(
        self, function: Callable[[], None], on_dropped: Callable[[], None]
    ) -> bool:
        """Hand `function()` to the I/O thread without waking it; False if it ended.

        For work that nobody waits for (a plain ack), from a thread that soon hands
        over more (a delivery thread: its next send, or `flush` before it blocks).
        The next submission runs it first; the sweep runs it within `DEFER_BOUND`
        when nothing else comes, so a handler busy for minutes holds nothing back.
        When no sweep is armed, it is submitted at once (and that arms one).
        `on_dropped()` runs instead if the thread ends before taking it.
        """
        with self._lock:
            if self._stopped:
                return False
            if self._sweeping:
                self._deferred.append((function, on_dropped))
                return True
        return self.submit(function)

    def flush(self) -> None:
        """Wake the I/O thread for what is deferred, if anything is."""
        if self._deferred:
            with self._lock:
                if not self._deferred or self._stopped:
                    return
                batch = self._take_deferred()
                self.ioloop.add_callback_threadsafe(lambda: self._run_batch(batch))

    def _take_deferred(self) -> list[Callable[[], None]]:
        """The deferred tasks, taken out; under `_lock`."""
        if not self._deferred:
            return []
        batch = [function for function, _ in self._deferred]
        self._deferred = []
        return batch

    def _run_batch(self, batch: list[Callable[[], None]]) -> None:
        """On the I/O thread: run submitted tasks, and keep a sweep armed while
        tasks are handed over, so that deferring one needs no wake-up."""
        for function in batch:
            _run_guarded(function)
        if not self._sweeping:
            with self._lock:
                self._sweeping = True
            self.ioloop.call_later(DEFER_BOUND, self._sweep)

    def _sweep(self) -> None:
        """On the I/O thread: run what was deferred since the last sweep; stop
        sweeping once there was nothing (the next `defer` then wakes the thread)."""
        with self._lock:
            batch = self._take_deferred()
            if not batch:
                self._sweeping = False
                return
        for function in batch:
            _run_guarded(function)
        self.ioloop.call_later(DEFER_BOUND, self._sweep)

    def call(
        self,
        make_chain: Callable[[], Chain[T]],
        what: str | Callable[[], str],
        timeout: float,
    ) -> T:
        """Run the chain `make_chain()` on the I/O thread and wait for its result."""
        if self.on_thread():
            raise TransportError(
                f"could not {describe(what)}: called on the pika I/O thread"
            )
        outcome = _Outcome()

        def start() -> None:
            if outcome.settled:
                return
            try:
                chain = make_chain()
            except BaseException as exc:
                outcome.settle(None, exc)
                return
            run_chain(
                chain,
                lambda value: outcome.settle(value, None),
                lambda exc: outcome.settle(None, exc),
            )

        with self._lock:
            self._outstanding.add(outcome)
        try:
            if not self.submit(start):
                raise DisconnectedError(
                    f"could not {describe(what)}: the connection is closed"
                )
            if not outcome.wait(timeout):
                problem = (
                    f"could not {describe(what)}: RabbitMQ did not answer within "
                    f"{timeout:g} s; "
                    "the broker may be overloaded or blocked (check its alarms), or "
                    "raise `call_timeout`"
                )
                # A chain that has not started yet now never will; one that ended
                # just now keeps its outcome.
                timed_out = TransportError(problem)
                outcome.settle(None, timed_out)
                if outcome.error is timed_out:
                    raise timed_out
        finally:
            with self._lock:
                self._outstanding.discard(outcome)
        if outcome.error is None:
            result: T = outcome.value
            return result
        error = as_transport_error(outcome.error, what)
        if error is outcome.error:
            raise error
        raise error from outcome.error

    def fail_outstanding(self, error: ZocaloError) -> None:
        """Make every call waiting now raise `error` (the connection is gone)."""
        with self._lock:
            waiting = list(self._outstanding)
        for outcome in waiting:
            outcome.settle(None, error)

    def stop(self) -> None:
        """Stop the loop and wait (boundedly) for the thread; not from the thread."""
        if not self.submit(self.ioloop.stop):
            return
        if not self.on_thread() and self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive():
                logger.warning(
                    "The pika I/O thread did not stop within %s s", _STOP_TIMEOUT
                )
