"""Hook implementations that zocalo-transport-pika registers with Zocalo.

The `pika` transport (also accepted as `PikaTransport`, its name in the existing
system) and the `pika` configuration plugin, whose block holds the connection
settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from zocalo_core import ConfigPlugin, TransportPlugin, hookimpl

from zocalo_transport_pika._settings import CONFIG_KEYS, PikaSettings
from zocalo_transport_pika._transport import PikaTransport

logger = logging.getLogger(__name__)

PIKA_BLOCK = "the `pika` block"


def activate_pika(block: Mapping[str, Any], site: Any) -> PikaSettings:
    """Check a `pika` block; what it gives is the transport's `PikaSettings`."""
    return PikaSettings.from_mapping(block, PIKA_BLOCK)


def make_pika_transport(site: Any) -> PikaTransport:
    """A `PikaTransport` with the settings of the site's active `pika` blocks."""
    block = site.block_settings("pika") if site is not None else None
    return PikaTransport(PikaSettings.from_mapping(block or {}, PIKA_BLOCK))


@hookimpl
def zocalo_transports() -> Sequence[TransportPlugin]:
    return [
        TransportPlugin(
            "pika",
            make_pika_transport,
            "RabbitMQ, through pika: quorum queues, dead letters, transactions",
            aliases=("PikaTransport",),
        )
    ]


@hookimpl
def zocalo_config_plugins() -> Sequence[ConfigPlugin]:
    return [
        ConfigPlugin(
            "pika",
            activate_pika,
            "RabbitMQ connection settings for the pika transport",
            keys=CONFIG_KEYS,
            check=lambda block: PikaSettings.from_mapping(block, PIKA_BLOCK),
        )
    ]
