"""Site configuration. NOTE: placeholder so the package imports; being replaced now."""

from __future__ import annotations

from typing import Any


class SiteConfiguration:
    def activate(self, environments: Any = (), *, default: bool = True) -> tuple[str, ...]:
        return ()


def load(path: Any = None) -> SiteConfiguration:
    return SiteConfiguration()
