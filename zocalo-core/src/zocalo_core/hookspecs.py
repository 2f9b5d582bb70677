"""The hooks that Zocalo plugins implement.

A plugin is a module (or object) with functions named after these specs, marked with
`zocalo_core.hookimpl`, and listed in its distribution's entry-point group `zocalo`::

    [project.entry-points.zocalo]
    zocalo_plugin_mysite = "zocalo_plugin_mysite.plugin"

Every registration hook returns a list of typed records (or `None`, which means the
plugin contributes nothing of that kind). Names must be unique across all installed
plugins: two providers of one name are an error that names both.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from zocalo_core._records import (
    CommandPlugin,
    ConfigPlugin,
    DispatcherFilter,
    ReadinessCheck,
    ServicePlugin,
    TransportPlugin,
    WrapperPlugin,
)

PROJECT_NAME = "zocalo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def zocalo_transports() -> Sequence[TransportPlugin] | None:
    """Register transports, the connections to a message broker.

    Returns a list of `TransportPlugin` records; `None` registers nothing. The name is
    what `-t/--transport` and the site file's `transport` block accept.

    Example::

        @hookimpl
        def zocalo_transports():
            return [TransportPlugin("mybroker", MyBroker.from_site, "My broker")]
    """


@hookspec
def zocalo_config_plugins() -> Sequence[ConfigPlugin] | None:
    """Register configuration plugins, the kinds of block a site file may hold.

    Returns a list of `ConfigPlugin` records; `None` registers nothing. A block with
    `plugin: <name>` is checked against the record's keys and handed to its `activate`
    when an environment that lists it is activated.

    Example::

        @hookimpl
        def zocalo_config_plugins():
            keys = (ConfigKey("url", (str,), required=True),)
            return [ConfigPlugin("ispyb", lambda block, site: block, "ISPyB", keys)]
    """


@hookspec
def zocalo_services() -> Sequence[ServicePlugin] | None:
    """Register services that `zocalo service -s NAME` and `zocalo run` can start.

    Returns a list of `ServicePlugin` records; `None` registers nothing.

    Example::

        @hookimpl
        def zocalo_services():
            return [ServicePlugin("Echo", EchoService, "Send every message back")]
    """


@hookspec
def zocalo_wrappers() -> Sequence[WrapperPlugin] | None:
    """Register wrappers that `zocalo wrap --wrap NAME` runs around an external program.

    Returns a list of `WrapperPlugin` records; `None` registers nothing.

    Example::

        @hookimpl
        def zocalo_wrappers():
            return [WrapperPlugin("xia2", Xia2Wrapper, "Run xia2 and report results")]
    """


@hookspec
def zocalo_dispatcher_filters() -> Sequence[DispatcherFilter] | None:
    """Register filters the Dispatcher applies to every processing request.

    Returns a list of `DispatcherFilter` records; `None` registers nothing. Filters run
    in plugin registration order, before the Dispatcher's own steps.

    Example::

        @hookimpl
        def zocalo_dispatcher_filters():
            return [DispatcherFilter("beamline", add_beamline, "Look up the beamline")]
    """


@hookspec
def zocalo_readiness_checks() -> Sequence[ReadinessCheck] | None:
    """Register checks the Dispatcher asks before it starts a recipe.

    Returns a list of `ReadinessCheck` records; `None` registers nothing. A request
    waits (with a bound) until every check says it is ready.

    Example::

        @hookimpl
        def zocalo_readiness_checks():
            return [ReadinessCheck("files", files_complete, "Wait for the data files")]
    """


@hookspec
def zocalo_cli_commands() -> Sequence[CommandPlugin] | None:
    """Register click commands or groups that appear under `zocalo`.

    Returns a list of `CommandPlugin` records; `None` registers nothing. A command name
    may not shadow a built-in command.

    Example::

        @hookimpl
        def zocalo_cli_commands():
            return [CommandPlugin("configure-rabbitmq", configure, "Apply a topology")]
    """
