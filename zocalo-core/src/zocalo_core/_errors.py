"""The error classes of Zocalo, one root and a few subclasses by audience.

Every message says what failed, on which object, and how to fix it where that is known.
The command line turns any of them into one line on standard error and an exit code.
"""

from __future__ import annotations


class ZocaloError(Exception):
    """The root of every error that Zocalo raises on purpose."""

    exit_code = 1


class ConfigurationError(ZocaloError):
    """A site configuration file, block or environment is wrong."""


class PluginError(ZocaloError):
    """A plugin is missing, registered twice, or broken."""


class UnknownPluginError(PluginError):
    """A transport, service, wrapper or other plugin was named but is not installed."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        choices = ", ".join(self.known) if self.known else "none are installed"
        super().__init__(f"no {kind} named {name!r} is installed; known: {choices}")


class TransportError(ZocaloError):
    """A transport operation failed."""


class DisconnectedError(TransportError):
    """The transport is not connected, or lost its connection and gave up on it."""


class MessageError(ZocaloError):
    """A message is malformed or cannot be handled."""


class RecipeError(ZocaloError):
    """A recipe is invalid, or a recipe message does not fit its recipe."""
