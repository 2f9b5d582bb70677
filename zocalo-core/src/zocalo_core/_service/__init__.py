"""Services and the machinery that runs them."""

from zocalo_core._service.base import (
    Handling,
    RejectMessage,
    Service,
    Subscribe,
    SubscribeBroadcast,
)
from zocalo_core._service.runner import RunnerOptions, ServiceRunner
from zocalo_core._service.status import ServiceStatus

__all__ = [
    "Handling",
    "RejectMessage",
    "RunnerOptions",
    "Service",
    "ServiceRunner",
    "ServiceStatus",
    "Subscribe",
    "SubscribeBroadcast",
]
