"""Hook implementations that zocalo-services-contrib registers with Zocalo: the
Dispatcher, the worker services of the main job, the `runner` configuration plugin and
the `zocalo run` command."""

from __future__ import annotations

from collections.abc import Sequence

from zocalo_core import CommandPlugin, ServicePlugin, hookimpl


@hookimpl
def zocalo_services() -> Sequence[ServicePlugin]:
    from zocalo_services_contrib._dispatcher import DISPATCHER_SERVICE

    return [DISPATCHER_SERVICE]


@hookimpl
def zocalo_cli_commands() -> Sequence[CommandPlugin]:
    from zocalo_services_contrib._run_cmd import run

    summary = "Run one recipe to the end on the embedded transport, in this process"
    return [CommandPlugin("run", run, summary)]
