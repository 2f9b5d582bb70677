"""`IoThread`: deferred tasks keep their order, their bound, and are never lost
silently. No broker: a bare pika I/O loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from zocalo_transport_pika._loop import DEFER_BOUND, IoThread


@pytest.fixture
def io() -> Iterator[IoThread]:
    thread = IoThread("test I/O")
    thread.start()
    yield thread
    thread.stop()


def run_on(io: IoThread) -> None:
    """Submit a task and wait until the I/O thread has run it (and arms a sweep)."""
    ran = threading.Event()
    assert io.submit(ran.set)
    assert ran.wait(2)


def test_deferred_task_goes_before_the_next_submission(io: IoThread) -> None:
    order: list[str] = []
    done = threading.Event()
    run_on(io)
    assert io.defer(lambda: order.append("deferred"), lambda: order.append("lost"))
    assert io.submit(lambda: (order.append("submitted"), done.set()))
    assert done.wait(2)
    assert order == ["deferred", "submitted"]


def test_deferred_task_is_not_held_past_the_bound(io: IoThread) -> None:
    """Nothing else comes (a handler that acked, then works for minutes)."""
    ran = threading.Event()
    run_on(io)
    handed_at = time.monotonic()
    assert io.defer(ran.set, lambda: None)
    assert ran.wait(2)
    assert time.monotonic() - handed_at < DEFER_BOUND + 0.2


def test_deferring_on_an_idle_loop_submits_at_once(io: IoThread) -> None:
    run_on(io)
    # The sweep finds nothing, and stops: the next task wakes the thread itself.
    time.sleep(3 * DEFER_BOUND)
    ran = threading.Event()
    handed_at = time.monotonic()
    assert io.defer(ran.set, lambda: None)
    assert ran.wait(2)
    assert time.monotonic() - handed_at < DEFER_BOUND


def test_flush_wakes_the_thread_for_what_is_deferred(io: IoThread) -> None:
    run_on(io)
    ran = threading.Event()
    assert io.defer(ran.set, lambda: None)
    io.flush()
    assert ran.wait(DEFER_BOUND / 2)


def test_deferred_task_of_a_loop_that_ends_is_reported_dropped() -> None:
    io = IoThread("test I/O, ending")
    io.start()
    in_task, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def stop_from_the_loop() -> None:
        io.ioloop.stop()
        in_task.set()
        release.wait(2)

    run_on(io)
    assert io.submit(stop_from_the_loop)
    assert in_task.wait(2)
    assert io.defer(lambda: outcome.append("ran"), lambda: outcome.append("dropped"))
    release.set()
    deadline = time.monotonic() + 2
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["dropped"]
    assert not io.defer(lambda: None, lambda: None)
    io.stop()
