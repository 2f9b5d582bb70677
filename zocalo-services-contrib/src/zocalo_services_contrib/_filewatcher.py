"""The FileWatcher service: one message per input file as it appears.

Each message on the `filewatcher` queue is one look at the step's directory. New
files that have settled are announced, and unless the watch is complete or its time
is up, the step checkpoints its state back to itself with a delay. Sends, checkpoint
and ack commit together, so a look is never half done and no message is held while
waiting. The deadline is fixed at the first look and travels in the checkpoint.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zocalo_core import (
    Message,
    RecipeWrapper,
    RejectMessage,
    Service,
    ServicePlugin,
    Subscribe,
)

#: The payload key under which a watch carries its state from one look to the next.
STATE_KEY = "zocalo-filewatcher"
DEFAULT_TIMEOUT = 600.0
DEFAULT_INTERVAL = 1.0

#: (size, modification time in ns) of a file at one look.
Signature = tuple[int, int]


@dataclass(frozen=True)
class WatchSpec:
    """What a step asks for, from its parameters."""

    directory: Path
    pattern: str | None
    expected_files: tuple[str, ...] | None
    expected_count: int | None
    timeout: float
    interval: float

    def matches(self, name: str) -> bool:
        if self.expected_files is not None:
            return name in self.expected_files
        assert self.pattern is not None
        if name.startswith(".") and not self.pattern.startswith("."):
            return False
        return fnmatch.fnmatchcase(name, self.pattern)


@dataclass
class WatchState:
    """What earlier looks found: announced names in order, and files still settling."""

    deadline: float
    announced: list[str] = field(default_factory=list)
    pending: dict[str, Signature] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        pending = {name: list(signature) for name, signature in self.pending.items()}
        state = {"deadline": self.deadline, "announced": self.announced}
        return {STATE_KEY: {**state, "pending": pending}}

    @classmethod
    def from_payload(cls, payload: Any) -> WatchState | None:
        if not isinstance(payload, Mapping) or STATE_KEY not in payload:
            return None
        state = payload[STATE_KEY]
        try:
            pending = {
                str(name): (int(size), int(mtime))
                for name, (size, mtime) in state["pending"].items()
            }
            announced = [str(name) for name in state["announced"]]
            return cls(float(state["deadline"]), announced, pending)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"the FileWatcher checkpoint state is malformed: {exc!r}"
            raise RejectMessage(reason) from exc


def _positive(parameters: Mapping[str, Any], key: str, default: float) -> float:
    value = parameters.get(key, default)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value <= 0:
        reason = f"FileWatcher parameter {key!r} must be a positive number of "
        reason += f"seconds, not {value!r}"
        raise RejectMessage(reason)
    return float(value)


def _expected_files(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        reason = "FileWatcher parameter 'expected_files' must be a non-empty list "
        reason += "of file names"
        raise RejectMessage(reason)
    for name in value:
        plain = isinstance(name, str) and name not in ("", ".", "..")
        if not plain or "/" in name or "\0" in name:
            reason = f"FileWatcher parameter 'expected_files' lists {name!r}; give "
            reason += "plain file names inside 'directory', without '/'"
            raise RejectMessage(reason)
    return tuple(dict.fromkeys(value))


def _expected_count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        reason = "FileWatcher parameter 'expected_count' must be a whole number of "
        reason += f"at least 1, not {value!r}"
        raise RejectMessage(reason)
    return value


def _directory(value: Any) -> Path:
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        reason = "FileWatcher parameter 'directory' must be an absolute path, not "
        reason += f"{value!r}"
        raise RejectMessage(reason)
    return Path(value)


def parse_spec(parameters: Any) -> WatchSpec:
    """Read a step's parameters; anything unusable raises `RejectMessage`."""
    if not isinstance(parameters, Mapping):
        raise RejectMessage("the FileWatcher step has no 'parameters' mapping")
    pattern = parameters.get("pattern")
    listed = parameters.get("expected_files")
    if (pattern is None) == (listed is None):
        reason = "the FileWatcher step needs exactly one of 'pattern' (with an "
        reason += "optional 'expected_count') or 'expected_files'"
        raise RejectMessage(reason)
    if pattern is not None and (not isinstance(pattern, str) or "/" in pattern):
        reason = "FileWatcher parameter 'pattern' must be a glob of file names "
        reason += f"without '/' (the watch is not recursive), not {pattern!r}"
        raise RejectMessage(reason)
    if listed is not None and parameters.get("expected_count") is not None:
        reason = "FileWatcher parameter 'expected_count' goes with 'pattern'; "
        reason += "with 'expected_files' the count is the list's length"
        raise RejectMessage(reason)
    return WatchSpec(
        directory=_directory(parameters.get("directory")),
        pattern=pattern,
        expected_files=None if listed is None else _expected_files(listed),
        expected_count=_expected_count(parameters.get("expected_count")),
        timeout=_positive(parameters, "timeout", DEFAULT_TIMEOUT),
        interval=_positive(parameters, "interval", DEFAULT_INTERVAL),
    )


def list_candidates(spec: WatchSpec) -> dict[str, Signature]:
    """The regular files of the directory that the step asks for, by name."""
    found: dict[str, Signature] = {}
    try:
        entries = list(os.scandir(spec.directory))
    except FileNotFoundError:
        return found
    except NotADirectoryError as exc:
        reason = f"FileWatcher 'directory' {str(spec.directory)!r} is not a directory"
        raise RejectMessage(reason) from exc
    for entry in entries:
        if not spec.matches(entry.name):
            continue
        try:
            if entry.is_file():
                status = entry.stat()
                found[entry.name] = (status.st_size, status.st_mtime_ns)
        except FileNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class LookResult:
    """What one look changed: the names announced now, and whether the watch is done."""

    new: list[str]
    complete: bool


def advance(
    spec: WatchSpec, state: WatchState, found: dict[str, Signature]
) -> LookResult:
    """Move files whose size and time held still since the last look to announced."""
    announced = set(state.announced)
    settled = sorted(
        name
        for name, signature in found.items()
        if name not in announced and state.pending.get(name) == signature
    )
    if spec.expected_count is not None:
        settled = settled[: spec.expected_count - len(state.announced)]
    state.announced.extend(settled)
    announced.update(settled)
    state.pending = {
        name: signature for name, signature in found.items() if name not in announced
    }
    if spec.expected_files is not None:
        complete = announced.issuperset(spec.expected_files)
    elif spec.expected_count is not None:
        complete = len(announced) >= spec.expected_count
    else:
        complete = bool(announced) and not state.pending
    return LookResult(settled, complete)


def missing_names(spec: WatchSpec, state: WatchState) -> tuple[list[str], int]:
    """The names still expected, where known, and how many files are missing."""
    if spec.expected_files is not None:
        missing = [name for name in spec.expected_files if name not in state.announced]
        return missing, len(missing)
    settling = sorted(state.pending)
    if spec.expected_count is not None:
        return settling, spec.expected_count - len(state.announced)
    return settling, max(len(settling), 0 if state.announced else 1)


class FileWatcher(Service):
    """Announces the files of a directory on output `every`, then on `finally`.

    See docs/services.md for the step parameters and the messages sent.
    """

    name = "FileWatcher"
    subscriptions = [Subscribe("filewatcher", "on_look")]

    def on_look(self, rw: RecipeWrapper, message: Message) -> None:
        spec = parse_spec(rw.recipe_step.get("parameters"))
        state = WatchState.from_payload(rw.payload)
        if state is None:
            state = WatchState(deadline=time.time() + spec.timeout)
            self.log.info(
                "watching %s for %s, for up to %.0f s",
                spec.directory,
                spec.pattern or f"{len(spec.expected_files or ())} named files",
                spec.timeout,
            )
        result = advance(spec, state, list_candidates(spec))
        self._announce(rw, spec, state, result.new)
        if result.complete:
            self._finish(rw, spec, state)
            return
        remaining = state.deadline - time.time()
        if remaining <= 0:
            self._time_out(rw, spec, state)
            return
        rw.checkpoint(state.to_payload(), delay=min(spec.interval, remaining))

    def _announce(
        self, rw: RecipeWrapper, spec: WatchSpec, state: WatchState, new: list[str]
    ) -> None:
        # A step with plain (unnamed) outputs gets the per-file messages there.
        rw.set_default_channel("every")
        first_index = len(state.announced) - len(new)
        for offset, name in enumerate(new):
            if spec.expected_files is not None:
                index = spec.expected_files.index(name)
            else:
                index = first_index + offset
            path = str(spec.directory / name)
            self.log.debug("announcing %s (index %d)", path, index)
            rw.send({"file": path, "name": name, "index": index})

    def _finish(self, rw: RecipeWrapper, spec: WatchSpec, state: WatchState) -> None:
        files = [str(spec.directory / name) for name in state.announced]
        self.log.info("all %d files found in %s", len(files), spec.directory)
        outputs = (rw.recipe_step or {}).get("output")
        # `finally` is optional: many recipes only care about each file, and a step
        # without it should not log a missing output at every run.
        if isinstance(outputs, dict) and "finally" in outputs:
            rw.send_to("finally", {"files": files, "count": len(files)})

    def _time_out(self, rw: RecipeWrapper, spec: WatchSpec, state: WatchState) -> None:
        missing, missing_count = missing_names(spec, state)
        self.log.warning(
            "gave up on %s after %.0f s: %d of the expected files are missing",
            spec.directory,
            spec.timeout,
            missing_count,
        )
        payload = {
            "missing": missing,
            "missing_count": missing_count,
            "seen": list(state.announced),
            "directory": str(spec.directory),
            "timeout": spec.timeout,
        }
        rw.send_to("timeout", payload)


FILEWATCHER_SERVICE = ServicePlugin(
    "FileWatcher",
    FileWatcher,
    "Announce a directory's files one message each as they appear",
)
