"""The `runner` config plugin: what the Runner may run, where services may use files.

One site block of plugin `runner` holds the programs the Runner may start, the roots
under which its working directories must lie, the roots under which JSONLines may
write, and the Runner's timing settings. Activating the block pins every program named
without a path to the absolute path found on PATH at that moment, so a later change of
PATH cannot change what a name runs.

The path checks shared by the services live here too: a path is resolved (symlinks
followed, `..` folded) before it is compared with the resolved roots.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zocalo_core import ConfigKey, ConfigPlugin, ConfigurationError, RejectMessage

logger = logging.getLogger(__name__)

#: The name of the config plugin, and of the block services look for.
RUNNER_PLUGIN_NAME = "runner"

DEFAULT_TIMEOUT = 3600.0
DEFAULT_MAX_OUTPUT = 4096
DEFAULT_LEASE_INTERVAL = 30.0
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_STALE_AFTER = 60.0
#: Where job state files live unless the block says: under $XDG_STATE_HOME.
STATE_SUBDIRECTORY = ("zocalo", "runner")

_NO_BLOCK_HINT = (
    "add a block with `plugin: runner` to the site configuration and list it in the "
    "active environment"
)


@dataclass(frozen=True)
class RunnerSettings:
    """What an activated `runner` block says; read it with `site.plugin("runner")`.

    `programs` pairs each allowed program as written in the block with the absolute
    path it was pinned to; `allowed_paths` holds those paths.
    """

    programs: tuple[tuple[str, str], ...]
    working_roots: tuple[Path, ...]
    output_roots: tuple[Path, ...]
    state_directory: Path
    default_timeout: float = DEFAULT_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT
    max_jobs: int = 4
    lease_interval: float = DEFAULT_LEASE_INTERVAL
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    stale_after: float = DEFAULT_STALE_AFTER

    @property
    def allowed_paths(self) -> frozenset[str]:
        return frozenset(path for _, path in self.programs)

    def program_path(self, program: str) -> str | None:
        """The absolute path `program` (a command's first argument) may run, or None.

        A bare name is first matched against the names of the block, then looked up
        on the Runner's PATH; either way the path found must be an allowed one.
        Paths are compared as written, never with symlinks resolved: several
        programs that are links to one multi-call binary stay distinct.
        """
        if not program or "\0" in program:
            return None
        if os.path.isabs(program):
            normal = os.path.normpath(program)
            return normal if normal in self.allowed_paths else None
        if os.sep in program or (os.altsep and os.altsep in program):
            return None
        for name, path in self.programs:
            if name == program:
                return path
        found = shutil.which(program)
        if found is None:
            return None
        normal = os.path.normpath(os.path.abspath(found))
        return normal if normal in self.allowed_paths else None

    def describe_programs(self) -> str:
        return ", ".join(name for name, _ in self.programs) or "none"


def runner_settings(site: Any, service: str, purpose: str) -> RunnerSettings:
    """The site's `runner` settings, or a `RejectMessage` that says to add the block."""
    settings = site.plugin(RUNNER_PLUGIN_NAME) if site is not None else None
    if isinstance(settings, RunnerSettings):
        return settings
    reason = (
        f"{service} refuses to {purpose}: the site configuration has no active "
        f"`runner` block; {_NO_BLOCK_HINT}"
    )
    raise RejectMessage(reason)


def resolve_under_roots(
    path: str | os.PathLike[str],
    roots: Sequence[Path],
    *,
    what: str,
    setting: str,
    relative_to_first_root: bool = False,
) -> Path:
    """`path` resolved, if it lies inside one of the resolved `roots`.

    Symlinks are followed and `..` folded first, so neither can lead outside a root.
    A relative `path` is refused, or taken relative to the first root when
    `relative_to_first_root`. Raises `RejectMessage` naming `what` and the `setting`
    that lists the roots.
    """
    if not roots:
        reason = f"{what} {os.fspath(path)!r} cannot be used: the `runner` block "
        reason += f"lists no `{setting}`; add the directories it may use there"
        raise RejectMessage(reason)
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        if not relative_to_first_root:
            reason = f"{what} {os.fspath(path)!r} is not an absolute path; give one "
            reason += f"under one of the `{setting}`: {_listing(roots)}"
            raise RejectMessage(reason)
        candidate = roots[0] / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        reason = f"{what} {os.fspath(path)!r} cannot be resolved: {exc}"
        raise RejectMessage(reason) from exc
    if not any(resolved.is_relative_to(root) for root in roots):
        reason = f"{what} {os.fspath(path)!r} (resolved: {resolved}) lies outside "
        reason += f"the `{setting}` of the `runner` block: {_listing(roots)}"
        raise RejectMessage(reason)
    return resolved


def _listing(roots: Sequence[Path]) -> str:
    return ", ".join(str(root) for root in roots)


def _problem(key: str, text: str) -> ConfigurationError:
    return ConfigurationError(f"key {key!r} {text}")


def _strings(block: Mapping[str, Any], key: str) -> list[str]:
    value = block.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise _problem(key, "must be a list of non-empty strings; fix the block")
    return list(value)


def _number(block: Mapping[str, Any], key: str, default: float) -> float:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _problem(key, "must be a positive number of seconds; fix the block")
    return float(value)


def _count(block: Mapping[str, Any], key: str, default: int) -> int:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _problem(key, "must be a whole number of at least 1; fix the block")
    return value


def _roots(block: Mapping[str, Any], key: str, base: Path) -> tuple[Path, ...]:
    roots = []
    for text in _strings(block, key):
        root = (base / Path(text).expanduser()).resolve()
        if not root.is_dir():
            logger.warning(
                "runner block: %s entry %s is not an existing directory", key, root
            )
        roots.append(root)
    return tuple(roots)


def _pin_program(program: str) -> str | None:
    if os.path.isabs(program):
        normal = os.path.normpath(program)
        if not (os.path.isfile(normal) and os.access(normal, os.X_OK)):
            logger.warning(
                "runner block: program %s is not an executable file on this host; "
                "jobs asking for it will fail to start",
                normal,
            )
        return normal
    if os.sep in program or (os.altsep and os.altsep in program):
        message = (
            f"key 'programs' lists {program!r}, a relative path; give a bare program "
            "name (looked up on PATH) or an absolute path"
        )
        raise ConfigurationError(message)
    found = shutil.which(program)
    if found is None:
        logger.warning(
            "runner block: program %r is not on PATH on this host, so it is not "
            "allowed here; install it or give its absolute path",
            program,
        )
        return None
    return os.path.normpath(os.path.abspath(found))


def _pinned_programs(block: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    pinned = []
    for program in dict.fromkeys(_strings(block, "programs")):
        path = _pin_program(program)
        if path is not None:
            logger.debug("runner block: program %r pinned to %s", program, path)
            pinned.append((program, path))
    return tuple(pinned)


def default_state_directory() -> Path:
    """$XDG_STATE_HOME/zocalo/runner, or ~/.local/state/zocalo/runner."""
    state_home = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base.joinpath(*STATE_SUBDIRECTORY)


def _state_directory(block: Mapping[str, Any], base: Path) -> Path:
    # Not under a working root by default: that may be the very directory of the
    # inputs, which a rerun must find unchanged.
    value = block.get("state_directory")
    if value is None:
        return default_state_directory()
    if not isinstance(value, str) or not value:
        raise _problem("state_directory", "must be a directory path; fix the block")
    return (base / Path(value).expanduser()).resolve()


def activate_runner(block: Mapping[str, Any], site: Any) -> RunnerSettings:
    """Check a `runner` block and return its frozen `RunnerSettings`."""
    site_path = getattr(site, "path", None)
    base = Path(site_path).parent if site_path is not None else Path.cwd()
    working_roots = _roots(block, "working_roots", base)
    heartbeat = _number(block, "heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)
    stale_after = _number(block, "stale_after", DEFAULT_STALE_AFTER)
    if stale_after <= heartbeat:
        message = "key 'stale_after' must be longer than 'heartbeat_interval' "
        message += f"({heartbeat:g} s), or every running job would look abandoned"
        raise ConfigurationError(message)
    return RunnerSettings(
        programs=_pinned_programs(block),
        working_roots=working_roots,
        output_roots=_roots(block, "output_roots", base),
        state_directory=_state_directory(block, base),
        default_timeout=_number(block, "default_timeout", DEFAULT_TIMEOUT),
        max_output=_count(block, "max_output", DEFAULT_MAX_OUTPUT),
        max_jobs=_count(block, "max_jobs", os.cpu_count() or 4),
        lease_interval=_number(block, "lease_interval", DEFAULT_LEASE_INTERVAL),
        heartbeat_interval=heartbeat,
        stale_after=stale_after,
    )


_NUMBER = (int, float)

RUNNER_CONFIG_PLUGIN = ConfigPlugin(
    name=RUNNER_PLUGIN_NAME,
    activate=activate_runner,
    summary="What the Runner may run and where Runner and JSONLines may work",
    keys=(
        ConfigKey("programs", (list,), summary="allowed program names or paths"),
        ConfigKey("working_roots", (list,), summary="roots of working directories"),
        ConfigKey("output_roots", (list,), summary="roots JSONLines may write under"),
        ConfigKey("default_timeout", _NUMBER, summary="seconds, default 3600"),
        ConfigKey("max_output", (int,), summary="bytes of output tail kept, 4096"),
        ConfigKey("max_jobs", (int,), summary="commands run at once per Runner"),
        ConfigKey("state_directory", (str,), summary="where job state files live"),
        ConfigKey("lease_interval", _NUMBER, summary="longest gap between looks"),
        ConfigKey("heartbeat_interval", _NUMBER, summary="seconds between beats"),
        ConfigKey("stale_after", _NUMBER, summary="beat age marking a lost Runner"),
    ),
)
