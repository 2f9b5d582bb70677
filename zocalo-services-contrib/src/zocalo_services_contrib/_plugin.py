"""Hook implementations that zocalo-services-contrib registers with Zocalo: the
Dispatcher, the worker services of the main job, the `runner` configuration plugin and
the `zocalo run` command."""

from __future__ import annotations

from collections.abc import Sequence

from zocalo_core import CommandPlugin, ConfigPlugin, ServicePlugin, hookimpl


@hookimpl
def zocalo_services() -> Sequence[ServicePlugin]:
    from zocalo_services_contrib._dispatcher import DISPATCHER_SERVICE
    from zocalo_services_contrib._filewatcher import FILEWATCHER_SERVICE
    from zocalo_services_contrib._jsonlines import JSONLINES_SERVICE
    from zocalo_services_contrib._runner import RUNNER_SERVICE

    return [DISPATCHER_SERVICE, FILEWATCHER_SERVICE, RUNNER_SERVICE, JSONLINES_SERVICE]


@hookimpl
def zocalo_config_plugins() -> Sequence[ConfigPlugin]:
    from zocalo_services_contrib._settings import RUNNER_CONFIG_PLUGIN

    return [RUNNER_CONFIG_PLUGIN]


@hookimpl
def zocalo_cli_commands() -> Sequence[CommandPlugin]:
    from zocalo_services_contrib._run_cmd import run

    summary = "Run one recipe to the end on the embedded transport, in this process"
    return [CommandPlugin("run", run, summary)]
