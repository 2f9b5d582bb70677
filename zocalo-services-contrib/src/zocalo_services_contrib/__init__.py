"""Zocalo services: the Dispatcher, FileWatcher, Runner, JSONLines, Mailer and
Schlockmeister."""

__all__: list[str] = []
