"""What a Runner step asks to run: the command, checked against the `runner` block.

The step's `command` is an argument list, never a shell line. Its placeholders
(`{file}`, `{name}`, ...) are filled from the incoming payload with the recipes' safe
substitution, then its first argument must be a program the site allows, and the
working directory must lie under a working root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zocalo_core import RejectMessage, apply_parameters

from zocalo_services_contrib._settings import RunnerSettings, resolve_under_roots


@dataclass(frozen=True)
class CommandSpec:
    """One command to run: its arguments, the program path pinned for `argv[0]`."""

    argv: tuple[str, ...]
    executable: str
    workdir: Path
    timeout: float
    max_output: int

    def describe(self) -> dict[str, Any]:
        return {"command": list(self.argv), "workdir": str(self.workdir)}


def _arguments(parameters: Mapping[str, Any], payload: Any) -> tuple[str, ...]:
    command = parameters.get("command")
    if not isinstance(command, list) or not command:
        reason = "the Runner step needs a 'command' parameter: a non-empty list of "
        reason += 'arguments, such as ["sha256sum", "{file}"]'
        raise RejectMessage(reason)
    values = payload if isinstance(payload, Mapping) else {}
    filled = apply_parameters(command, values)
    arguments = []
    for index, argument in enumerate(filled):
        if isinstance(argument, bool) or not isinstance(argument, (str, int, float)):
            reason = f"Runner 'command' argument {index} is {argument!r}; every "
            reason += "argument must be a string or a number"
            raise RejectMessage(reason)
        text = str(argument)
        if "\0" in text:
            reason = f"Runner 'command' argument {index} contains a NUL character"
            raise RejectMessage(reason)
        arguments.append(text)
    return tuple(arguments)


def _timeout(parameters: Mapping[str, Any], settings: RunnerSettings) -> float:
    value = parameters.get("timeout", settings.default_timeout)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value <= 0:
        reason = "Runner parameter 'timeout' must be a positive number of seconds, "
        reason += f"not {value!r}"
        raise RejectMessage(reason)
    return float(value)


def _workdir(parameters: Mapping[str, Any], settings: RunnerSettings) -> Path:
    value = parameters.get("workdir")
    if not isinstance(value, str) or not value:
        reason = "the Runner step needs a 'workdir' parameter: the directory to run "
        reason += "the command in, under one of the `working_roots`"
        raise RejectMessage(reason)
    workdir = resolve_under_roots(
        value, settings.working_roots, what="working directory", setting="working_roots"
    )
    if not workdir.is_dir():
        reason = f"working directory {value!r} (resolved: {workdir}) is not an "
        reason += "existing directory"
        raise RejectMessage(reason)
    return workdir


def build_command(
    parameters: Any, payload: Any, settings: RunnerSettings
) -> CommandSpec:
    """The command a step asks for, or `RejectMessage` saying why it may not run."""
    if not isinstance(parameters, Mapping):
        raise RejectMessage("the Runner step has no 'parameters' mapping")
    argv = _arguments(parameters, payload)
    executable = settings.program_path(argv[0])
    if executable is None:
        reason = f"program {argv[0]!r} is not allowed by the site's `runner` block "
        reason += f"(allowed: {settings.describe_programs()}); add it to its "
        reason += "`programs` to let the Runner run it"
        raise RejectMessage(reason)
    return CommandSpec(
        argv=argv,
        executable=executable,
        workdir=_workdir(parameters, settings),
        timeout=_timeout(parameters, settings),
        max_output=settings.max_output,
    )


def job_key(rw_identity: Mapping[str, Any], spec: CommandSpec, payload: Any) -> str:
    """The name of a job's state: its recipe, step, command and input, hashed.

    Two requests with the same key are the same job, and run once.
    """
    identity = {**rw_identity, **spec.describe(), "input": payload}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def minimal_environment() -> dict[str, str]:
    """The environment of a command: PATH and the locale, nothing else."""
    kept = ("PATH", "LANG", "LC_ALL", "TZ")
    environment = {name: os.environ[name] for name in kept if name in os.environ}
    environment.setdefault("PATH", os.defpath)
    return environment
