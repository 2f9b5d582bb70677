"""The version of zocalo-core."""

__version__ = "0.1.0"
