"""The distribution installs, imports and registers with Zocalo; it offers nothing yet.

A distribution registers only what fully works; the ActiveMQ transport arrives with its
own issue, and until then `-t stomp` must be an unknown-transport error.
"""

from __future__ import annotations

from importlib import metadata, resources

import pytest
import zocalo_transport_stomp
from zocalo_core import UnknownPluginError, get_registry


def test_the_package_is_typed_and_imports() -> None:
    assert zocalo_transport_stomp.__all__ == []
    assert resources.files("zocalo_transport_stomp").joinpath("py.typed").is_file()


def test_it_is_registered_through_the_zocalo_entry_point_group() -> None:
    entry_points = metadata.distribution("zocalo-transport-stomp").entry_points
    [entry_point] = [ep for ep in entry_points if ep.group == "zocalo"]

    assert entry_point.value == "zocalo_transport_stomp._plugin"


def test_no_stomp_transport_is_offered_before_it_works() -> None:
    with pytest.raises(UnknownPluginError, match="no transport named 'stomp'"):
        get_registry().get("transport", "stomp")
