"""Zocalo services: the Dispatcher, FileWatcher, Runner, JSONLines, Mailer and
Schlockmeister, and the `zocalo run` command that runs a recipe in one process."""

from zocalo_services_contrib._dispatcher import DISPATCHER_SERVICE, Dispatcher
from zocalo_services_contrib._dispatcher_request import (
    DispatcherFilterError,
    InvalidRequestError,
    PreparedRequest,
    normalise_request,
    prepare_request,
    recipe_directory,
)
from zocalo_services_contrib._filewatcher import FILEWATCHER_SERVICE, FileWatcher
from zocalo_services_contrib._jsonlines import JSONLINES_SERVICE, JSONLines
from zocalo_services_contrib._runner import RUNNER_SERVICE, Runner
from zocalo_services_contrib._settings import RUNNER_CONFIG_PLUGIN, RunnerSettings

__all__ = [
    "DISPATCHER_SERVICE",
    "FILEWATCHER_SERVICE",
    "JSONLINES_SERVICE",
    "RUNNER_CONFIG_PLUGIN",
    "RUNNER_SERVICE",
    "Dispatcher",
    "DispatcherFilterError",
    "FileWatcher",
    "InvalidRequestError",
    "JSONLines",
    "PreparedRequest",
    "Runner",
    "RunnerSettings",
    "normalise_request",
    "prepare_request",
    "recipe_directory",
]
