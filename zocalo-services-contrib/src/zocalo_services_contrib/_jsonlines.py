"""The JSONLines service: each payload appended as one JSON line to its step's file.

Messages are buffered by file and acknowledged only once their lines are written and
synced: at 100 buffered messages, 10 MB of buffered lines, a buffered message older
than one second, or one second without any message. A group whose write fails is
nacked and dropped from the buffer, so its messages come back from the broker and are
never acked late.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zocalo_core import (
    DisconnectedError,
    Handling,
    Message,
    RecipeWrapper,
    RejectMessage,
    Service,
    ServicePlugin,
    Subscribe,
    TransportError,
)

from zocalo_services_contrib._settings import resolve_under_roots, runner_settings

#: Flush once this many messages are buffered (also the subscription's prefetch).
MAX_BUFFERED_MESSAGES = 100
#: Flush once the buffered lines take this many bytes.
MAX_BUFFERED_BYTES = 10 * 1024 * 1024
#: Flush after this many seconds without a message, or when the oldest waited as long.
FLUSH_AFTER = 1.0


@dataclass
class _Group:
    """The buffered lines of one output file, with their messages."""

    messages: list[Message] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)


def select_keys(payload: Any, parameters: Mapping[str, Any]) -> Any:
    """The payload with `include` then `exclude` applied to its top-level keys."""
    include, exclude = parameters.get("include"), parameters.get("exclude")
    for key, value in (("include", include), ("exclude", exclude)):
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            reason = f"JSONLines parameter {key!r} must be a list of key names, not "
            reason += f"{value!r}"
            raise RejectMessage(reason)
    if not isinstance(payload, Mapping):
        return payload
    selected = dict(payload)
    if include is not None:
        selected = {key: item for key, item in selected.items() if key in include}
    if exclude is not None:
        selected = {key: item for key, item in selected.items() if key not in exclude}
    return selected


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError:
            # Take a partial write back, so the redelivered messages do not follow
            # a broken line.
            os.ftruncate(descriptor, start)
            raise
    finally:
        os.close(descriptor)


class JSONLines(Service):
    """Appends payloads to JSON Lines files under the site's `output_roots`."""

    name = "JSONLines"
    subscriptions = [
        Subscribe(
            "jsonlines",
            "on_record",
            prefetch=MAX_BUFFERED_MESSAGES,
            handling=Handling.MANUAL,
        )
    ]
    idle_timeout = FLUSH_AFTER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._groups: dict[Path, _Group] = {}
        self._count = 0
        self._bytes = 0
        self._oldest: float | None = None

    def on_record(self, rw: RecipeWrapper, message: Message) -> None:
        parameters = rw.recipe_step.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise RejectMessage("the JSONLines step's 'parameters' is not a mapping")
        path = self._output_path(parameters)
        line = json.dumps(select_keys(rw.payload, parameters)).encode() + b"\n"
        group = self._groups.setdefault(path, _Group())
        group.messages.append(message)
        group.lines.append(line)
        self._count += 1
        self._bytes += len(line)
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        if (
            self._count >= MAX_BUFFERED_MESSAGES
            or self._bytes >= MAX_BUFFERED_BYTES
            or now - self._oldest >= (self.idle_timeout or FLUSH_AFTER)
        ):
            self.flush()

    def _output_path(self, parameters: Mapping[str, Any]) -> Path:
        settings = runner_settings(self.site, "JSONLines", "write")
        value = parameters.get("output_file", parameters.get("output_filename"))
        if not isinstance(value, str) or not value:
            reason = "the JSONLines step names no file: set its parameter "
            reason += "'output_file' to a path under the `output_roots`"
            raise RejectMessage(reason)
        path = resolve_under_roots(
            value,
            settings.output_roots,
            what="JSONLines output file",
            setting="output_roots",
            relative_to_first_root=True,
        )
        if path.is_dir():
            raise RejectMessage(f"JSONLines output file {str(path)!r} is a directory")
        return path

    def on_idle(self) -> None:
        self.flush()

    def on_stopping(self) -> None:
        # The subscription still holds the buffered messages: write and ack them now,
        # so a stop loses nothing and the next instance writes nothing twice.
        self.flush()

    def _discard(self) -> None:
        self._groups = {}
        self._count = 0
        self._bytes = 0
        self._oldest = None

    def flush(self) -> None:
        """Write every buffered group, then ack (or, if writing failed, nack) it."""
        groups = self._groups
        self._discard()
        for path, group in groups.items():
            self._write_group(path, group)

    def _write_group(self, path: Path, group: _Group) -> None:
        try:
            _append(path, b"".join(group.lines))
        except OSError as exc:
            self.log.error(
                "could not write %d messages to %s: %s; returning them to the queue",
                len(group.messages),
                path,
                exc,
            )
            self._settle(group, self.transport.nack)
            return
        self.log.debug("wrote %d messages to %s", len(group.messages), path)
        self._settle(group, self.transport.ack)

    def _settle(self, group: _Group, settle: Any) -> None:
        for message in group.messages:
            try:
                settle(message)
            except DisconnectedError:
                raise
            except TransportError as exc:
                self.log.warning(
                    "could not settle message %s: %s", message.message_id, exc
                )


JSONLINES_SERVICE = ServicePlugin(
    "JSONLines",
    JSONLines,
    "Append each payload as a JSON line to the file its step names",
)
