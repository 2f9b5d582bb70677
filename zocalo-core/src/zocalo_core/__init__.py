"""Zocalo: automated data processing after data acquisition.

The public API of the core: site configuration (`load`), the plugin marker
(`hookimpl`) and records, and the error classes. The documented modules
`zocalo_core.transport`, `zocalo_core.hookspecs` and `zocalo_core.testing` are public
too; everything else is private.
"""

from __future__ import annotations

from zocalo_core._config import ConfigurationProblems, SiteConfiguration, load
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
from zocalo_core._memory import MemoryBroker, MemoryTransport, QueuedMessage
from zocalo_core._plugins import get_plugin_manager, get_registry
from zocalo_core._recipe import (
    RECIPE_HEADER,
    InvalidRecipeError,
    Recipe,
    RecipeEnvelope,
    RecipeProblem,
    RecipeWrapper,
    apply_parameters,
    build_envelope,
    is_recipe_message,
    parse_envelope,
    recipe_headers,
    start_recipe,
)
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
from zocalo_core._service import (
    Handling,
    RejectMessage,
    RunnerOptions,
    Service,
    ServiceRunner,
    ServiceStatus,
    Subscribe,
    SubscribeBroadcast,
)
from zocalo_core._version import __version__
from zocalo_core.hookspecs import hookimpl
from zocalo_core.transport import Message, Subscription, Transaction, Transport

__all__ = [
    "RECIPE_HEADER",
    "CommandPlugin",
    "ConfigKey",
    "ConfigPlugin",
    "ConfigurationError",
    "ConfigurationProblems",
    "DisconnectedError",
    "DispatcherFilter",
    "Handling",
    "InvalidRecipeError",
    "MemoryBroker",
    "MemoryTransport",
    "Message",
    "MessageError",
    "PluginError",
    "QueuedMessage",
    "ReadinessCheck",
    "Recipe",
    "RecipeEnvelope",
    "RecipeError",
    "RecipeProblem",
    "RecipeWrapper",
    "RejectMessage",
    "RunnerOptions",
    "Service",
    "ServicePlugin",
    "ServiceRunner",
    "ServiceStatus",
    "SiteConfiguration",
    "Subscribe",
    "SubscribeBroadcast",
    "Subscription",
    "Transaction",
    "Transport",
    "TransportError",
    "TransportPlugin",
    "UnknownPluginError",
    "WrapperPlugin",
    "ZocaloError",
    "__version__",
    "apply_parameters",
    "build_envelope",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "is_recipe_message",
    "load",
    "parse_envelope",
    "recipe_headers",
    "start_recipe",
]
