"""The `zocalo` pytest plugin: fixtures for the memory broker, and capability selection.

pytest loads it through the `pytest11` entry point of zocalo-core. Tests of the
conformance suite that need a capability the transport under test does not declare
are deselected at collection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from zocalo_core.testing._helpers import CAPABILITY_MARKER

if TYPE_CHECKING:
    from zocalo_core._memory import MemoryBroker, MemoryTransport


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{CAPABILITY_MARKER}(*capabilities): the transport capabilities a "
        "conformance test needs; deselected where the transport lacks them",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        declared = getattr(getattr(item, "cls", None), "transport_capabilities", None)
        needed = {
            capability
            for marker in item.iter_markers(CAPABILITY_MARKER)
            for capability in marker.args
        }
        if declared is not None and not needed <= set(declared):
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture
def memory_broker() -> Iterator[MemoryBroker]:
    """A new `MemoryBroker` of its own for each test, closed afterwards."""
    from zocalo_core._memory import MemoryBroker

    broker = MemoryBroker()
    yield broker
    broker.close(timeout=5.0)


@pytest.fixture
def memory_transport(memory_broker: MemoryBroker) -> Iterator[MemoryTransport]:
    """A connected `MemoryTransport` on the test's `memory_broker`."""
    from zocalo_core._memory import MemoryTransport

    transport = MemoryTransport(memory_broker)
    transport.connect()
    yield transport
    transport.disconnect()


@pytest.fixture
def unique_name() -> Callable[..., str]:
    """A factory of names no other test uses: `unique_name("images")`."""

    def make(label: str = "test") -> str:
        return f"zocalo.{label}.{uuid.uuid4().hex[:12]}"

    return make
