"""Zocalo: automated data processing after data acquisition.

The public API of the core: site configuration (`load`), the plugin marker
(`hookimpl`) and records, and the error classes. The documented modules
`zocalo_core.transport`, `zocalo_core.hookspecs` and `zocalo_core.testing` are public
too; everything else is private.
"""

from __future__ import annotations

from zocalo_core._config import SiteConfiguration, load
from zocalo_core._errors import (
    ConfigurationError,
    DisconnectedError,
    MessageError,
    PluginError,
    RecipeError,
    TransportError,
    UnknownPluginError,
    ZocaloError,
)
from zocalo_core._plugins import get_plugin_manager, get_registry
from zocalo_core._records import (
    CommandPlugin,
    ConfigKey,
    ConfigPlugin,
    DispatcherFilter,
    ReadinessCheck,
    ServicePlugin,
    TransportPlugin,
    WrapperPlugin,
)
from zocalo_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "CommandPlugin",
    "ConfigKey",
    "ConfigPlugin",
    "ConfigurationError",
    "DisconnectedError",
    "DispatcherFilter",
    "MessageError",
    "PluginError",
    "ReadinessCheck",
    "RecipeError",
    "ServicePlugin",
    "SiteConfiguration",
    "TransportError",
    "TransportPlugin",
    "UnknownPluginError",
    "WrapperPlugin",
    "ZocaloError",
    "__version__",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "load",
]
