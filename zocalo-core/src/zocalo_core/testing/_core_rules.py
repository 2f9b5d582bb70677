"""Conformance tests of the rules every transport keeps: CONN, BODY, HEAD, QUEUE."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zocalo_core._errors import DisconnectedError, MessageError, TransportError
from zocalo_core.testing._base import ConformanceBase, NameFactory, TransportFactory
from zocalo_core.testing._helpers import Collector, is_active, state_of
from zocalo_core.transport import (
    MAX_NAME_BYTES,
    Capability,
    ConnectionState,
    SubscriptionKind,
    Transport,
)


class ConnectionRules(ConformanceBase):
    def test_conn_connect_and_disconnect(
        self, transport_factory: TransportFactory
    ) -> None:
        """CONN-1: DISCONNECTED, then CONNECTED after connect(), then DISCONNECTED."""
        transport = transport_factory()
        assert state_of(transport) is ConnectionState.DISCONNECTED
        assert not transport.is_connected()
        transport.connect()
        try:
            assert state_of(transport) is ConnectionState.CONNECTED
            assert transport.is_connected()
        finally:
            transport.disconnect()
        assert state_of(transport) is ConnectionState.DISCONNECTED
        assert not transport.is_connected()

    def test_conn_context_manager(self, transport_factory: TransportFactory) -> None:
        """CONN-2: `with transport:` connects, and disconnects also on an error."""
        transport = transport_factory()
        with transport as entered:
            assert entered is transport
            assert transport.is_connected()
        assert state_of(transport) is ConnectionState.DISCONNECTED

        def fail_inside() -> None:
            with transport:
                assert transport.is_connected()
                raise RuntimeError("inside the block")

        with pytest.raises(RuntimeError, match="inside the block"):
            fail_inside()
        assert state_of(transport) is ConnectionState.DISCONNECTED

    def test_conn_connect_and_disconnect_twice(
        self, transport_factory: TransportFactory
    ) -> None:
        """CONN-3: connecting a connected transport, or the reverse, does nothing."""
        transport = transport_factory()
        transport.disconnect()
        assert state_of(transport) is ConnectionState.DISCONNECTED
        transport.connect()
        transport.connect()
        assert transport.is_connected()
        transport.disconnect()
        transport.disconnect()
        assert state_of(transport) is ConnectionState.DISCONNECTED

    def test_conn_calls_need_a_connection(
        self, transport_factory: TransportFactory, new_name: NameFactory
    ) -> None:
        """CONN-4: every other call on a transport not connected: DisconnectedError."""
        queue = new_name()
        transport = transport_factory()
        with transport:
            collector = Collector()
            subscription = transport.subscribe(queue, collector)
            transport.send(queue, "held")
            (message,) = self.receive(collector)
            transaction = None
            if self.has(Capability.TRANSACTIONS):
                transaction = transport.transaction_begin()
        calls: list[Any] = [
            lambda: transport.subscribe(queue, collector),
            lambda: transport.subscribe_broadcast(queue, collector),
            lambda: transport.subscribe_temporary(collector),
            lambda: transport.unsubscribe(subscription),
            lambda: transport.send(queue, "x"),
            lambda: transport.broadcast(queue, "x"),
            lambda: transport.ack(message),
            lambda: transport.nack(message),
            lambda: transport.reject(message, "not connected"),
            lambda: transport.transaction_begin(),
        ]
        if transaction is not None:
            calls.append(lambda: transport.transaction_commit(transaction))
            calls.append(lambda: transport.transaction_abort(transaction))
        for call in calls:
            with pytest.raises(DisconnectedError):
                call()

    def test_conn_connect_again(
        self, transport_factory: TransportFactory, new_name: NameFactory
    ) -> None:
        """CONN-5: a transport connects again; old subscriptions stay ended."""
        queue = new_name()
        transport = transport_factory()
        first = Collector(transport, ack=True)
        with transport:
            old = transport.subscribe(queue, first)
        with transport:
            assert not is_active(old)
            second = self.collect(transport, queue)
            transport.send(queue, "after reconnecting")
            assert self.receive(second)[0].body == "after reconnecting"
            first.assert_quiet(self.quiet_period, 0)

    def test_conn_name_and_capabilities(self, transport: Transport) -> None:
        """CONN-6: `name` is a string and `capabilities` exactly those declared."""
        assert isinstance(transport.name, str)
        assert transport.name
        assert isinstance(transport.capabilities, frozenset)
        assert all(isinstance(c, Capability) for c in transport.capabilities)
        assert transport.capabilities == self.transport_capabilities

    def test_conn_five_states(self, transport_factory: TransportFactory) -> None:
        """CONN-7: only the five states exist; is_connected() only when CONNECTED."""
        assert {state.value for state in ConnectionState} == {
            "disconnected",
            "connecting",
            "connected",
            "reconnecting",
            "failed",
        }
        transport = transport_factory()
        seen = [transport.state]
        with transport:
            seen.append(transport.state)
            assert transport.is_connected() == (
                state_of(transport) is ConnectionState.CONNECTED
            )
        seen.append(transport.state)
        assert all(isinstance(state, ConnectionState) for state in seen)
        assert ConnectionState.FAILED not in seen
        assert ConnectionState.RECONNECTING not in seen


class BodyRules(ConformanceBase):
    def test_body_json_values(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BODY-1: JSON values arrive equal; `raw` holds their UTF-8 JSON."""
        queue = new_name()
        bodies: list[Any] = [
            {"nested": {"list": [1, 2.5, "x", None, True]}},
            [1, "two", [3]],
            "text with ü and ☃",
            0,
            -2.5,
            True,
            False,
            None,
        ]
        collector = self.collect(transport, queue)
        for body in bodies:
            transport.send(queue, body)
        messages = self.receive(collector, len(bodies))
        for body, message in zip(bodies, messages, strict=True):
            assert message.body == body
            assert type(message.body) is type(body)
            assert json.loads(message.raw.decode("utf-8")) == body

    def test_body_bytes_unencoded(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BODY-2: a bytes body travels as it is and decodes as JSON."""
        queue = new_name()
        raw = b'{ "spaced" :  [1, 2] }'
        collector = self.collect(transport, queue)
        transport.send(queue, raw)
        transport.send(queue, bytearray(b"[3]"))
        first, second = self.receive(collector, 2)
        assert first.raw == raw
        assert first.body == {"spaced": [1, 2]}
        assert second.raw == b"[3]"
        assert second.body == [3]

    def test_body_decode_false(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BODY-3: with decode=False the body is the raw bytes, whatever they hold."""
        queue = new_name()
        collector = self.collect(transport, queue, decode=False)
        transport.send(queue, b"\x00\xff not json")
        transport.send(queue, {"a": 1})
        first, second = self.receive(collector, 2)
        assert first.body == b"\x00\xff not json"
        assert first.raw == first.body
        assert second.body == second.raw
        assert json.loads(second.body) == {"a": 1}

    def test_body_unencodable_body(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BODY-4: a body that is not JSON raises MessageError and is not sent."""
        queue = new_name()
        for body in ({1, 2}, object(), float("nan"), {"x": float("inf")}):
            with pytest.raises(MessageError):
                transport.send(queue, body)
        transport.send(queue, "marker")
        collector = self.collect(transport, queue)
        assert self.receive(collector)[0].body == "marker"
        collector.assert_quiet(self.quiet_period)

    def test_body_undecodable_never_handled(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """BODY-5: a body that is not UTF-8 JSON never reaches a decoding handler."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(queue, b"\xff\xfe")
        transport.send(queue, b"{not json")
        transport.send(queue, "marker")
        assert self.receive(collector)[0].body == "marker"
        collector.assert_quiet(self.quiet_period)


APPLICATION_HEADERS: dict[str, Any] = {
    "text": "x",
    "empty": "",
    "big": 2**40,
    "negative": -3,
    "ratio": 1.5,
    "yes": True,
    "no": False,
    "nothing": None,
    "list": [1, "a", [None, 2.5]],
    "dict": {"k": {"n": [1.5, False]}},
}


class HeaderRules(ConformanceBase):
    def test_head_headers_exact(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """HEAD-1: headers arrive exactly as sent, types included; none: empty."""
        queue = new_name()
        collector = self.collect(transport, queue)
        transport.send(queue, 1, headers=APPLICATION_HEADERS)
        transport.send(queue, 2)
        first, second = self.receive(collector, 2)
        assert dict(first.headers) == APPLICATION_HEADERS
        for key, value in APPLICATION_HEADERS.items():
            assert type(first.headers[key]) is type(value)
        assert dict(second.headers) == {}

    def test_head_transport_fields_apart(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """HEAD-2: transport fields never join or overwrite the application's."""
        queue = new_name()
        mine = {
            "message-id": "mine",
            "message_id": "mine too",
            "destination": "elsewhere",
            "priority": "the application's",
            "subscription": "not yours",
            "redelivered": "maybe",
        }
        options: dict[str, Any] = {}
        if self.has(Capability.PRIORITY):
            options["priority"] = 6
        if self.has(Capability.EXPIRATION):
            options["expiration"] = 60.0
        collector = self.collect(transport, queue)
        transport.send(queue, "x", headers=mine, **options)
        (message,) = self.receive(collector)
        assert dict(message.headers) == mine
        assert message.message_id not in ("mine", "mine too")
        assert message.destination == queue

    def test_head_invalid_headers(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """HEAD-3: headers outside HEAD-1 raise MessageError and nothing is sent."""
        queue = new_name()
        invalid: list[Any] = [
            {1: "int key"},
            {"bytes": b"x"},
            {"object": object()},
            {"nan": float("nan")},
            {"huge": 2**64},
            {"nested": [{1, 2}]},
            {"dict": {3: "int key"}},
            "not a mapping",
        ]
        for headers in invalid:
            with pytest.raises(MessageError):
                transport.send(queue, "x", headers=headers)
        transport.send(queue, "marker")
        collector = self.collect(transport, queue)
        assert self.receive(collector)[0].body == "marker"
        collector.assert_quiet(self.quiet_period)

    def test_head_headers_read_only(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """HEAD-4: headers are read-only; changing the sent dict changes nothing."""
        queue = new_name()
        sent: dict[str, Any] = {"list": [1], "value": "before"}
        collector = self.collect(transport, queue)
        transport.send(queue, "x", headers=sent)
        sent["list"].append(2)
        sent["value"] = "after"
        sent["added"] = True
        (message,) = self.receive(collector)
        assert dict(message.headers) == {"list": [1], "value": "before"}
        with pytest.raises(TypeError):
            message.headers["added"] = True  # type: ignore[index]

    def test_head_reserved_headers_carried(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """HEAD-5: `x-zocalo-` headers carried over by a tool arrive unchanged."""
        queue = new_name()
        carried = {
            "x-zocalo-deaths": [
                {
                    "queue": queue,
                    "reason": "rejected",
                    "error": "an earlier death",
                    "attempts": 1,
                    "time": "2025-01-01T00:00:00+00:00",
                }
            ],
            "app": 1,
        }
        collector = self.collect(transport, queue)
        transport.send(queue, "x", headers=carried)
        assert dict(self.receive(collector)[0].headers) == carried


class QueueRules(ConformanceBase):
    def test_queue_delivered_once(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """QUEUE-1: one delivery each, with destination, subscription and an id."""
        queue = new_name()
        collector = Collector(transport, ack=True)
        subscription = transport.subscribe(queue, collector)
        assert subscription.kind is SubscriptionKind.QUEUE
        assert subscription.destination == queue
        transport.send(queue, "one")
        transport.send(queue, "two")
        messages = self.receive(collector, 2)
        collector.assert_quiet(self.quiet_period)
        assert sorted(str(m.body) for m in messages) == ["one", "two"]
        for message in messages:
            assert message.destination == queue
            assert message.subscription is subscription
            assert isinstance(message.message_id, str)
            assert message.message_id
        assert messages[0].message_id != messages[1].message_id

    def test_queue_messages_wait(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """QUEUE-2: messages sent before anyone subscribes wait in the queue."""
        queue = new_name()
        for number in range(3):
            transport.send(queue, number)
        collector = self.collect(transport, queue)
        assert sorted(m.body for m in self.receive(collector, 3)) == [0, 1, 2]

    def test_queue_competing_consumers(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """QUEUE-3: each message goes to exactly one of the queue's subscribers."""
        queue = new_name()
        first, second, sender = connect(), connect(), connect()
        collectors = [self.collect(first, queue), self.collect(second, queue)]
        for number in range(20):
            sender.send(queue, number)
        Collector.wait_total(collectors, 20, self.delivery_timeout)
        for collector in collectors:
            collector.assert_quiet(self.quiet_period / 2)
        received = [body for c in collectors for body in c.bodies]
        assert sorted(received) == list(range(20))  # type: ignore[type-var]

    def test_queue_order(self, transport: Transport, new_name: NameFactory) -> None:
        """QUEUE-4: one priority, one sender, one consumer: the order of sending."""
        queue = new_name()
        for number in range(20):
            transport.send(queue, number)
        collector = self.collect(transport, queue, prefetch=1)
        assert [m.body for m in self.receive(collector, 20)] == list(range(20))

    def test_queue_names(self, transport: Transport, new_name: NameFactory) -> None:
        """QUEUE-5: non-empty, at most 255 bytes, no whitespace or control chars."""
        invalid: list[Any] = ["", "with space", "tab\there", "nul\x00", "x" * 256, 5]
        for bad in [*invalid, None]:
            with pytest.raises(TransportError):
                transport.send(bad, "x")
            with pytest.raises(TransportError):
                transport.subscribe(bad, Collector())
        prefix = new_name()
        longest = prefix + "x" * (MAX_NAME_BYTES - len(prefix.encode("utf-8")))
        collector = Collector(transport, ack=True)
        subscription = transport.subscribe(longest, collector)
        transport.send(longest, "fits")
        assert self.receive(collector)[0].destination == longest
        # Unsubscribed first, as in TEMP-2's test: see there.
        transport.unsubscribe(subscription)
        self.cleanup_queues([longest])

    def test_queue_unsubscribe(
        self, transport: Transport, new_name: NameFactory
    ) -> None:
        """QUEUE-6: after unsubscribe nothing new is delivered; later ones wait."""
        queue = new_name()
        first = Collector(transport, ack=True)
        subscription = transport.subscribe(queue, first)
        assert is_active(subscription)
        transport.unsubscribe(subscription)
        assert not is_active(subscription)
        transport.send(queue, "later")
        first.assert_quiet(self.quiet_period, 0)
        second = self.collect(transport, queue)
        assert self.receive(second)[0].body == "later"

    def test_queue_unsubscribe_twice(
        self, connect: TransportFactory, new_name: NameFactory
    ) -> None:
        """QUEUE-7: unsubscribing an ended or foreign subscription: TransportError."""
        queue = new_name()
        transport, other = connect(), connect()
        subscription = transport.subscribe(queue, Collector())
        with pytest.raises(TransportError):
            other.unsubscribe(subscription)
        transport.unsubscribe(subscription)
        with pytest.raises(TransportError):
            transport.unsubscribe(subscription)
