"""The typed records that registration hooks return, one kind of record per plugin kind.

A plugin contributes by returning a list of these from the matching `zocalo_*` hook.
Each record carries the name users will type, the thing itself and a one-line summary
for `zocalo plugins`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from zocalo_core.transport import Transport


@dataclass(frozen=True)
class TransportPlugin:
    """A transport, built by `factory` from the activated site configuration.

    `factory` receives the `SiteConfiguration` (or `None` when there is no site file)
    and returns an unconnected `Transport`. `aliases` are extra names accepted on the
    command line and in site files, such as the existing `PikaTransport`.
    """

    name: str
    factory: Callable[[Any], Transport]
    summary: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigKey:
    """One key that a configuration plugin's block may hold.

    `types` are the accepted Python types of the value after YAML parsing. A `secret`
    key is masked by `zocalo config show` and never logged.
    """

    name: str
    types: tuple[type, ...]
    required: bool = False
    secret: bool = False
    summary: str = ""


@dataclass(frozen=True)
class ConfigPlugin:
    """A configuration plugin: the kind of site-file block that says `plugin: <name>`.

    `activate(block, site)` runs when an environment using such a block is activated;
    `block` is the block's mapping without its `plugin` key and `site` the
    `SiteConfiguration` being activated. What it returns is kept and is available as
    `site.plugin(name)`. With `open_keys` the plugin accepts keys it does not declare
    (as `storage` and `logging` do); otherwise an undeclared key warns. `check(block)`,
    if given, checks a block's values beyond their types, without side effects, when
    the site file is read (and so by `zocalo config check`); it raises
    `ConfigurationError` naming the key, never a secret value.
    """

    name: str
    activate: Callable[[Mapping[str, Any], Any], Any]
    summary: str
    keys: tuple[ConfigKey, ...] = ()
    open_keys: bool = False
    check: Callable[[Mapping[str, Any]], object] | None = None


@dataclass(frozen=True)
class ServicePlugin:
    """A service for `zocalo service -s NAME`; `service_class` subclasses `Service`."""

    name: str
    service_class: type
    summary: str


@dataclass(frozen=True)
class WrapperPlugin:
    """A wrapper that `zocalo wrap --wrap NAME` can run around an external program."""

    name: str
    wrapper_class: type
    summary: str


@dataclass(frozen=True)
class DispatcherFilter:
    """A function the Dispatcher applies, in registration order, to every request.

    `function(message, parameters)` returns the (possibly new) `(message, parameters)`.
    """

    name: str
    function: Callable[..., Any]
    summary: str


@dataclass(frozen=True)
class ReadinessCheck:
    """A function the Dispatcher asks whether a request is ready to be processed.

    `function(message, parameters)` returns `True` when the request may go ahead.
    """

    name: str
    function: Callable[..., bool]
    summary: str


@dataclass(frozen=True)
class CommandPlugin:
    """A click command or group that a plugin adds under `zocalo`."""

    name: str
    command: click.Command
    summary: str


#: The plugin kinds, by the hook that registers them and the word users read.
PLUGIN_KINDS: Mapping[str, str] = {
    "zocalo_transports": "transport",
    "zocalo_config_plugins": "config plugin",
    "zocalo_services": "service",
    "zocalo_wrappers": "wrapper",
    "zocalo_dispatcher_filters": "dispatcher filter",
    "zocalo_readiness_checks": "readiness check",
    "zocalo_cli_commands": "command",
}
