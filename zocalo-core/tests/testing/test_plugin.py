"""The zocalo pytest plugin: its fixtures, capability deselection, and the suite
catching transports that break a rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from zocalo_core._memory import MemoryBroker, MemoryTransport

pytest_plugins = ["pytester"]

BROKER_IDS: list[int] = []


@pytest.mark.parametrize("run", [1, 2])
def test_memory_broker_is_new_for_each_test(
    memory_broker: MemoryBroker, run: int
) -> None:
    assert isinstance(memory_broker, MemoryBroker)
    assert id(memory_broker) not in BROKER_IDS
    BROKER_IDS.append(id(memory_broker))
    assert memory_broker.queue_names() == []


def test_memory_transport_is_connected_to_the_test_broker(
    memory_broker: MemoryBroker,
    memory_transport: MemoryTransport,
    unique_name: Callable[..., str],
) -> None:
    assert memory_transport.is_connected()
    assert memory_transport.broker is memory_broker
    memory_transport.send(queue := unique_name(), "x")
    assert [m.body for m in memory_broker.peek(queue)] == ["x"]


def test_unique_names_differ(unique_name: Callable[..., str]) -> None:
    names = {unique_name() for _ in range(100)} | {unique_name("images")}
    assert len(names) == 101
    assert unique_name("images").startswith("zocalo.images.")


SUBCLASS = """
import pytest
from zocalo_core.testing import MemoryTransport, TransportConformance
from zocalo_core.transport import Capability

{extra}

class TestSome(TransportConformance):
    transport_capabilities = frozenset({capabilities})
    quiet_period = 0.1
    delivery_timeout = 1.0

    @pytest.fixture
    def transport_factory(self, memory_broker):
        return lambda: {transport}(memory_broker)
"""


def run_suite(
    pytester: pytest.Pytester,
    *args: str,
    capabilities: str = "Capability",
    transport: str = "MemoryTransport",
    extra: str = "",
) -> pytest.RunResult:
    pytester.makepyfile(
        SUBCLASS.format(capabilities=capabilities, transport=transport, extra=extra)
    )
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", *args)


def test_undeclared_capabilities_are_deselected(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        "--collect-only",
        capabilities="{Capability.PREFETCH}",
        transport="Narrow",
        extra=(
            "class Narrow(MemoryTransport):\n"
            "    capabilities = frozenset({Capability.PREFETCH})"
        ),
    )
    collected = "\n".join(result.outlines)
    assert "test_queue_order" in collected
    assert "test_prefetch_limits" in collected
    assert "test_bcast_" not in collected
    assert "test_txn_" not in collected
    assert "test_delay_" not in collected
    assert "deselected" in collected


def test_a_narrow_transport_passes_what_it_declares(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        "-k",
        "conn_ or queue_ or prefetch_",
        capabilities="{Capability.PREFETCH}",
        transport="Narrow",
        extra=(
            "class Narrow(MemoryTransport):\n"
            "    capabilities = frozenset({Capability.PREFETCH})"
        ),
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("skipped", 0) == 0
    assert outcomes["passed"] >= 15


BROKEN = {
    "priority is ignored": (
        "prio_higher",
        "    def _send(self, outgoing, transaction):\n"
        "        import dataclasses\n"
        "        outgoing = dataclasses.replace(outgoing, priority=4)\n"
        "        super()._send(outgoing, transaction)\n",
    ),
    "a nack acks": (
        "redel_nack",
        "    def _settle(self, message, outcome, transaction, error):\n"
        "        from zocalo_core.transport import Outcome\n"
        "        super()._settle(message, Outcome.ACK, transaction, error)\n",
    ),
    "headers gain a field": (
        "head_",
        "    def _send(self, outgoing, transaction):\n"
        "        outgoing.headers['message-id'] = 'added by the transport'\n"
        "        super()._send(outgoing, transaction)\n",
    ),
    "delay ignored": (
        "delay_delayed_send",
        "    def _send(self, outgoing, transaction):\n"
        "        import dataclasses\n"
        "        outgoing = dataclasses.replace(outgoing, delay=0.0)\n"
        "        super()._send(outgoing, transaction)\n",
    ),
    "commit does nothing": (
        "txn_sends_at_commit",
        "    def _transaction_commit(self, transaction):\n        pass\n",
    ),
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_the_suite_catches_a_broken_transport(
    pytester: pytest.Pytester, broken: str
) -> None:
    selection, body = BROKEN[broken]
    result = run_suite(
        pytester,
        "-k",
        selection,
        transport="Broken",
        extra=f"class Broken(MemoryTransport):\n{body}",
    )
    assert result.parseoutcomes().get("failed", 0) >= 1


def test_a_wrong_capability_claim_fails(pytester: pytest.Pytester) -> None:
    result = run_suite(
        pytester,
        "-k",
        "conn_name_and_capabilities",
        capabilities="{Capability.PREFETCH}",
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert "passed" not in outcomes


def test_a_subclass_must_declare_its_capabilities(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from zocalo_core.testing import MemoryTransport, TransportConformance

        class TestUndeclared(TransportConformance):
            @pytest.fixture
            def transport_factory(self, memory_broker):
                return lambda: MemoryTransport(memory_broker)
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-k", "conn_context_manager"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*must set `transport_capabilities`*"])
