"""The configuration plugins that zocalo-core registers itself: `storage`, `transport`.

`storage` holds free-form settings that Zocalo and site code read by dotted key, such
as `zocalo.recipe_directory`; several storage blocks merge, later values winning.
`transport` names the transport to use when `-t` is not given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zocalo_core._records import ConfigKey, ConfigPlugin

#: Transport names of the existing system, accepted in site files for compatibility.
LEGACY_TRANSPORT_NAMES: Mapping[str, str] = {
    "PikaTransport": "pika",
    "StompTransport": "stomp",
}


def transport_name_from_legacy(name: str) -> str:
    """The name of a transport, translating the existing system's class names."""
    return LEGACY_TRANSPORT_NAMES.get(name, name)


def _activate_storage(block: Mapping[str, Any], site: Any) -> dict[str, Any]:
    # A new dict each time: the value returned by an earlier block, which callers
    # may hold, is never changed behind their back.
    merged = dict(site.plugin("storage") or {})
    merged.update(block)
    return merged


def _activate_transport(block: Mapping[str, Any], site: Any) -> str:
    return transport_name_from_legacy(str(block["default"]))


STORAGE_PLUGIN = ConfigPlugin(
    name="storage",
    activate=_activate_storage,
    summary="Free-form site settings by dotted key; later blocks override earlier",
    open_keys=True,
)

TRANSPORT_PLUGIN = ConfigPlugin(
    name="transport",
    activate=_activate_transport,
    summary="The transport used when -t/--transport is not given",
    keys=(
        ConfigKey(
            "default",
            (str,),
            required=True,
            summary="transport name, such as pika or stomp",
        ),
    ),
)

CORE_CONFIG_PLUGINS: tuple[ConfigPlugin, ...] = (STORAGE_PLUGIN, TRANSPORT_PLUGIN)
