"""Site configuration: YAML site files, their plugin blocks and environments.

`load()` reads and checks a site file; `SiteConfiguration.activate()` runs the config
plugins of the chosen environments. The format is described in docs/configuration.md.
"""

from __future__ import annotations

from zocalo_core._config._blocks import MASK
from zocalo_core._config._load import load
from zocalo_core._config._problems import ConfigurationProblems, Location
from zocalo_core._config._site import EnvironmentReport, SiteConfiguration

__all__ = [
    "MASK",
    "ConfigurationProblems",
    "EnvironmentReport",
    "Location",
    "SiteConfiguration",
    "load",
]
