"""The plugins that zocalo-core registers itself: the memory transport and the core's
configuration plugins. Imports happen inside the hooks so that importing this module
stays cheap."""

from __future__ import annotations

from collections.abc import Sequence

from zocalo_core._records import ConfigPlugin, TransportPlugin
from zocalo_core.hookspecs import hookimpl


@hookimpl
def zocalo_transports() -> Sequence[TransportPlugin]:
    from zocalo_core._memory import MEMORY_TRANSPORT

    return [MEMORY_TRANSPORT]


@hookimpl
def zocalo_config_plugins() -> Sequence[ConfigPlugin]:
    from zocalo_core._config.core_plugins import CORE_CONFIG_PLUGINS

    return list(CORE_CONFIG_PLUGINS)
