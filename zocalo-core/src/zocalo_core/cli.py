"""Building blocks for plugins that add `zocalo` commands.

A plugin command decorated with `site_options` takes the same `-c`, `-e`, `-t` and
`--debug` options as the built-in ones and receives a `SiteOptions`; raising a
`ZocaloError` from it prints one line and exits 1, as the built-in commands do.
"""

from zocalo_core._cli.common import NO_BROKER_MESSAGE, SiteOptions, site_options
from zocalo_core._cli.request import (
    PROCESSING_QUEUE,
    build_request,
    parse_settings,
    request_headers,
    request_options,
)

__all__ = [
    "NO_BROKER_MESSAGE",
    "PROCESSING_QUEUE",
    "SiteOptions",
    "build_request",
    "parse_settings",
    "request_headers",
    "request_options",
    "site_options",
]
