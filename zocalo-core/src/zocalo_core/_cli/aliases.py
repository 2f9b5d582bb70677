"""The dotted commands of the existing system (`zocalo.go`, ...), kept for its users.

Each is a thin alias: `zocalo.go ARGS` runs `zocalo go ARGS`.
"""

from __future__ import annotations

import sys

from zocalo_core._cli.main import main


def _alias(command: str) -> None:
    main([command, *sys.argv[1:]])


def go() -> None:
    _alias("go")


def service() -> None:
    _alias("service")


def shutdown() -> None:
    _alias("shutdown")
