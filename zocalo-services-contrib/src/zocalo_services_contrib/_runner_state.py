"""Job state files: one small JSON file per job, shared by every Runner of a site.

A job's file says who runs it (`running`: host, pid, heartbeat), how it ended
(`done`, with the result) or that its result was sent (`reported`). Claiming a job
creates its file atomically, so of two Runners only one can ever start it; every later
change replaces the file atomically, so readers never see half a file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zocalo_core import ZocaloError

logger = logging.getLogger(__name__)

RUNNING = "running"
DONE = "done"
REPORTED = "reported"


class JobStateError(ZocaloError):
    """A job state file cannot be read or written."""


def this_host() -> str:
    return socket.gethostname()


class JobStore:
    """The state files of one state directory, by job key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        """The job's state, or None if no Runner has claimed it yet."""
        path = self.path(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            message = f"cannot read the job state file {path}: {exc}; check the "
            message += "Runner's `state_directory` and its permissions"
            raise JobStateError(message) from exc
        try:
            state = json.loads(text)
        except ValueError as exc:
            message = f"the job state file {path} is not JSON ({exc}); remove it to "
            message += "let the job be reported as lost"
            raise JobStateError(message) from exc
        if not isinstance(state, dict):
            raise JobStateError(f"the job state file {path} does not hold an object")
        return state

    def _temporary(self, key: str, state: dict[str, Any]) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{key}.{uuid.uuid4().hex}.tmp"
            temporary.write_text(json.dumps(state))
        except OSError as exc:
            message = f"cannot write a job state file in {self.directory}: {exc}; "
            message += "check the Runner's `state_directory` and its permissions"
            raise JobStateError(message) from exc
        return temporary

    def claim(self, key: str, state: dict[str, Any]) -> bool:
        """Create the job's file with `state`; False if it exists already."""
        temporary = self._temporary(key, state)
        try:
            # A hard link fails if the name exists, on NFS too: the claim is atomic.
            os.link(temporary, self.path(key))
        except FileExistsError:
            return False
        except OSError as exc:
            message = f"cannot create the job state file {self.path(key)}: {exc}"
            raise JobStateError(message) from exc
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def write(self, key: str, state: dict[str, Any]) -> None:
        """Replace the job's file with `state`."""
        temporary = self._temporary(key, state)
        try:
            os.replace(temporary, self.path(key))
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            message = f"cannot replace the job state file {self.path(key)}: {exc}"
            raise JobStateError(message) from exc

    def release(self, key: str) -> None:
        """Remove a claim that could not be followed through."""
        self.path(key).unlink(missing_ok=True)


def running_state(token: str, job: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a job claimed now by this process; `job` describes the command."""
    now = time.time()
    return {
        **job,
        "status": RUNNING,
        "token": token,
        "host": this_host(),
        "pid": os.getpid(),
        "started": now,
        "heartbeat": now,
    }


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
