"""Logging configuration and Graylog handlers for Zocalo."""

__all__: list[str] = []
