"""RabbitMQ transport for Zocalo, on pika.

`PikaTransport` is the transport; `PikaSettings` its connection settings, as the
site file's `pika` block gives them. See this distribution's README for how queues,
dead letters, broadcasts and transactions map onto RabbitMQ.
"""

from __future__ import annotations

from zocalo_transport_pika._settings import PikaSettings
from zocalo_transport_pika._transport import (
    CAPABILITIES,
    CLASSIC_CAPABILITIES,
    PikaTransport,
)

__all__ = ["CAPABILITIES", "CLASSIC_CAPABILITIES", "PikaSettings", "PikaTransport"]
