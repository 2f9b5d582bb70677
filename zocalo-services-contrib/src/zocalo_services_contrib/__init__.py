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

__all__ = [
    "DISPATCHER_SERVICE",
    "Dispatcher",
    "DispatcherFilterError",
    "InvalidRequestError",
    "PreparedRequest",
    "normalise_request",
    "prepare_request",
    "recipe_directory",
]
