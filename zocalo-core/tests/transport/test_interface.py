"""What `Transport` does for every transport, checked on a small fake one."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from zocalo_core._errors import DisconnectedError, MessageError, TransportError
from zocalo_core.transport import (
    DEATHS_HEADER,
    Capability,
    ConnectionState,
    DeathReason,
    Message,
    Outcome,
    OutgoingMessage,
    Subscription,
    Transaction,
    Transport,
    add_death,
    check_headers,
    dead_letter_queue,
    decode_body,
    encode_body,
)


class FakeTransport(Transport):
    """Records what the base class asks of it; `fail` makes a method raise."""

    name = "fake"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, fail: str = "") -> None:
        super().__init__()
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def _record(self, method: str, argument: Any = None) -> None:
        self.calls.append((method, argument))
        if self.fail == method:
            raise RuntimeError(f"{method} broke")

    def _connect(self) -> None:
        self._record("connect")

    def _disconnect(self) -> None:
        self._record("disconnect")

    def _subscribe(self, subscription: Subscription) -> None:
        self._record("subscribe", subscription)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._record("unsubscribe", subscription)

    def _send(self, outgoing: OutgoingMessage, transaction: Transaction | None) -> None:
        self._record("send", outgoing)

    def _settle(
        self,
        message: Message,
        outcome: Outcome,
        transaction: Transaction | None,
        error: str | None,
    ) -> None:
        self._record("settle", (outcome, error))

    def deliver(self, subscription: Subscription, body: Any = "x") -> Message:
        message = Message(
            body=body,
            raw=encode_body(body),
            headers={},
            subscription=subscription,
            delivery_attempt=1,
            redelivered=False,
            message_id="m1",
            destination=subscription.destination,
        )
        self._deliver(message)
        return message


@pytest.fixture
def fake() -> FakeTransport:
    transport = FakeTransport()
    transport.connect()
    return transport


def test_connect_failure_is_a_disconnected_error() -> None:
    transport = FakeTransport(fail="connect")
    with pytest.raises(DisconnectedError, match="connect broke") as caught:
        transport.connect()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert transport.state is ConnectionState.DISCONNECTED


def test_unexpected_errors_of_a_transport_become_transport_errors() -> None:
    transport = FakeTransport(fail="send")
    transport.connect()
    with pytest.raises(TransportError, match="failed to send to 'q': send broke"):
        transport.send("q", 1)


def test_a_failed_subscribe_leaves_no_subscription() -> None:
    transport = FakeTransport(fail="subscribe")
    transport.connect()
    with pytest.raises(TransportError):
        transport.subscribe("q", lambda message: None)
    assert transport._subscriptions == {}


@pytest.mark.parametrize(
    ("call", "capability"),
    [
        (lambda t: t.send("q", 1, delay=1), "delay"),
        (lambda t: t.send("q", 1, expiration=1), "expiration"),
        (lambda t: t.send("q", 1, priority=5), "priority"),
        (lambda t: t.broadcast("q", 1), "broadcast"),
        (lambda t: t.subscribe_broadcast("q", print), "broadcast"),
        (lambda t: t.subscribe_temporary(print), "temporary-queues"),
        (lambda t: t.transaction_begin(), "transactions"),
    ],
)
def test_features_without_their_capability_are_refused(
    fake: FakeTransport, call: Any, capability: str
) -> None:
    with pytest.raises(TransportError, match=f"'{capability}' capability"):
        call(fake)
    assert not [c for c in fake.calls if c[0] == "send"]


def test_no_delay_needs_no_capability(fake: FakeTransport) -> None:
    fake.send("q", 1, delay=0)
    fake.send("q", 1, delay=None)
    assert [c[0] for c in fake.calls].count("send") == 2


def test_send_hands_over_checked_and_encoded_message(fake: FakeTransport) -> None:
    headers = {"list": [1]}
    fake.send("q", {"ü": 1}, headers=headers)
    (outgoing,) = [argument for method, argument in fake.calls if method == "send"]
    assert outgoing.raw == '{"ü":1}'.encode()
    assert outgoing.headers == {"list": [1]}
    assert outgoing.headers["list"] is not headers["list"]
    assert (outgoing.delay, outgoing.expiration, outgoing.priority) == (0.0, None, 4)


def test_handler_exception_is_logged_and_nacked(
    fake: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(message: Message) -> None:
        raise ValueError("no good")

    subscription = fake.subscribe("images", fail)
    fake.deliver(subscription)
    assert ("settle", (Outcome.NACK, "ValueError: no good")) in fake.calls
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "images" in record.getMessage()
    assert "m1" in record.getMessage()
    assert record.queue == "images"  # type: ignore[attr-defined]
    assert record.message_id == "m1"  # type: ignore[attr-defined]


def test_a_settled_message_is_not_nacked_after_an_exception(
    fake: FakeTransport,
) -> None:
    def ack_then_fail(message: Message) -> None:
        fake.ack(message)
        raise ValueError("after the ack")

    subscription = fake.subscribe("q", ack_then_fail)
    fake.deliver(subscription)
    outcomes = [argument[0] for method, argument in fake.calls if method == "settle"]
    assert outcomes == [Outcome.ACK]


def test_a_failed_settle_can_be_retried(fake: FakeTransport) -> None:
    subscription = fake.subscribe("q", lambda message: None)
    message = fake.deliver(subscription)
    fake.fail = "settle"
    with pytest.raises(TransportError):
        fake.ack(message)
    fake.fail = ""
    fake.ack(message)


def test_disconnect_ends_subscriptions(fake: FakeTransport) -> None:
    subscription = fake.subscribe("q", lambda message: None)
    fake.disconnect()
    assert not subscription.active
    fake.connect()
    with pytest.raises(TransportError):
        fake.unsubscribe(subscription)


def test_connection_lost_fails_the_transport(fake: FakeTransport) -> None:
    subscription = fake.subscribe("q", lambda message: None)
    fake._connection_lost(OSError("gone"))
    assert fake.state is ConnectionState.FAILED
    assert not subscription.active
    with pytest.raises(DisconnectedError, match="failed"):
        fake.send("q", 1)
    fake.connect()
    assert fake.is_connected()


def test_body_codec() -> None:
    assert encode_body(b"\x00raw") == b"\x00raw"
    assert decode_body(encode_body({"a": [1.5, None]})) == {"a": [1.5, None]}
    for raw in (b"\xff", b"NaN", b"[1,", b'"\xed\xa0\x80"'):
        with pytest.raises(MessageError, match="not UTF-8 JSON"):
            decode_body(raw)
    with pytest.raises(MessageError, match="set"):
        encode_body({1, 2})


def test_check_headers_copies_deeply() -> None:
    headers: dict[str, Any] = {"a": {"b": [1, {"c": None}]}}
    copied = check_headers(headers)
    assert copied == headers
    headers["a"]["b"][1]["c"] = "changed"
    assert copied == {"a": {"b": [1, {"c": None}]}}
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(MessageError, match="nested"):
        check_headers({"deep": deep})


def test_add_death_appends_to_the_history() -> None:
    when = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
    once = add_death(
        {"app": 1},
        queue="q",
        reason=DeathReason.REJECTED,
        error="bad",
        attempts=1,
        when=when,
    )
    twice = add_death(
        once, queue="q", reason=DeathReason.DELIVERY_LIMIT, error="x", attempts=5
    )
    assert once == {
        "app": 1,
        DEATHS_HEADER: [
            {
                "queue": "q",
                "reason": "rejected",
                "error": "bad",
                "attempts": 1,
                "time": "2025-06-01T12:00:00+00:00",
            }
        ],
    }
    assert [entry["reason"] for entry in twice[DEATHS_HEADER]] == [
        "rejected",
        "delivery-limit",
    ]
    assert len(once[DEATHS_HEADER]) == 1
    assert dead_letter_queue("images") == "dlq.images"


def test_temporary_queue_names(fake: FakeTransport) -> None:
    assert fake._temporary_queue_name(None).startswith("transient.")
    named = fake._temporary_queue_name("transient.replies")
    assert named.startswith("transient.replies.")
    assert not named.startswith("transient.transient.")
    assert fake._temporary_queue_name("replies").startswith("transient.replies.")
