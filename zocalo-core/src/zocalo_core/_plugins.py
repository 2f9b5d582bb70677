"""Building the plugin manager and looking plugins up by kind and name.

Nothing here runs at import time: `get_plugin_manager()` builds the manager on its first
call, registering the core's built-in plugins and then every entry point of the group
`zocalo`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import pluggy

from zocalo_core import hookspecs
from zocalo_core._errors import PluginError, UnknownPluginError
from zocalo_core._records import (
    PLUGIN_KINDS,
    CommandPlugin,
    ConfigPlugin,
    DispatcherFilter,
    ReadinessCheck,
    ServicePlugin,
    TransportPlugin,
    WrapperPlugin,
)

logger = logging.getLogger("zocalo_core.plugins")

#: Modules of zocalo-core that implement hooks themselves.
BUILTIN_PLUGIN_MODULES = ("zocalo_core._builtins",)

CORE_DISTRIBUTION = "zocalo-core"


class NamedRecord(Protocol):
    """What every registration record has: a name and a one-line summary."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...


RecordT = TypeVar("RecordT", bound=NamedRecord)

#: The record type each registration hook must return.
RECORD_TYPES: Mapping[str, type] = {
    "zocalo_transports": TransportPlugin,
    "zocalo_config_plugins": ConfigPlugin,
    "zocalo_services": ServicePlugin,
    "zocalo_wrappers": WrapperPlugin,
    "zocalo_dispatcher_filters": DispatcherFilter,
    "zocalo_readiness_checks": ReadinessCheck,
    "zocalo_cli_commands": CommandPlugin,
}


@dataclass(frozen=True)
class Registered(Generic[RecordT]):
    """A record together with the kind it is and the distribution that provided it."""

    kind: str
    record: RecordT
    distribution: str

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def summary(self) -> str:
        return self.record.summary


def _trace_hook_calls(manager: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Any, kwargs: Any) -> None:
        logger.debug("calling hook %s on %d plugins", hook_name, len(impls))

    def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
        logger.debug("hook %s returned", hook_name)

    manager.add_hookcall_monitoring(before, after)


def build_plugin_manager(
    extra_plugins: Iterable[object] = (),
    *,
    load_entry_points: bool = True,
    builtins: bool = True,
) -> pluggy.PluginManager:
    """Build a new plugin manager: specs, built-ins, entry points, then `extra_plugins`.

    Tests use `extra_plugins` (modules or objects with `zocalo_*` hook functions),
    `load_entry_points=False` and possibly `builtins=False` to see exactly the plugins
    they name.
    """
    import importlib

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    _trace_hook_calls(manager)
    for module_name in BUILTIN_PLUGIN_MODULES if builtins else ():
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        try:
            manager.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        except Exception as exc:
            message = f"a plugin of entry-point group 'zocalo' failed to load: {exc}"
            raise PluginError(message) from exc
    for plugin in extra_plugins:
        manager.register(plugin)
    manager.check_pending()
    return manager


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """Return the one plugin manager of this process, building it on first use."""
    return build_plugin_manager()


def _distribution_of(manager: pluggy.PluginManager) -> dict[int, str]:
    names = {
        id(plugin): dist.project_name for plugin, dist in manager.list_plugin_distinfo()
    }
    for module_name in BUILTIN_PLUGIN_MODULES:
        plugin = manager.get_plugin(module_name)
        if plugin is not None:
            names[id(plugin)] = CORE_DISTRIBUTION
    return names


def _call_registration_hook(hook_name: str, impl: Any, provider: str) -> list[Any]:
    try:
        records = list(impl.function() or ())
    except Exception as exc:
        message = (
            f"plugin {impl.plugin_name!r} of {provider} failed in {hook_name}: {exc}"
        )
        raise PluginError(message) from exc
    expected = RECORD_TYPES[hook_name]
    for record in records:
        if not isinstance(record, expected):
            message = (
                f"plugin {impl.plugin_name!r} of {provider} returned {record!r} from "
                f"{hook_name}; expected {expected.__name__} records"
            )
            raise PluginError(message)
    return records


class PluginRegistry:
    """Every registered record, by kind and name, with duplicates rejected."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        distribution_of = _distribution_of(manager)
        self._by_kind: dict[str, dict[str, Registered[Any]]] = {}
        for hook_name, kind in PLUGIN_KINDS.items():
            entries: dict[str, Registered[Any]] = {}
            hook = getattr(manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                provider = distribution_of.get(id(impl.plugin), impl.plugin_name)
                for record in _call_registration_hook(hook_name, impl, provider):
                    self._add(entries, Registered(kind, record, provider))
            self._by_kind[kind] = entries

    @staticmethod
    def _add(entries: dict[str, Registered[Any]], entry: Registered[Any]) -> None:
        names = [entry.name, *getattr(entry.record, "aliases", ())]
        for name in names:
            existing = entries.get(name)
            if existing is not None:
                message = (
                    f"{entry.kind} {name!r} is registered twice: by "
                    f"{existing.distribution} and by {entry.distribution}"
                )
                raise PluginError(message)
            entries[name] = entry

    def entries(self, kind: str) -> Mapping[str, Registered[Any]]:
        """All entries of one kind by every name they answer to, aliases included."""
        return self._by_kind[kind]

    def records(self, kind: str) -> list[Any]:
        """The records of one kind, each once, in registration order."""
        seen: dict[int, Any] = {}
        for entry in self._by_kind[kind].values():
            seen.setdefault(id(entry.record), entry.record)
        return list(seen.values())

    def get(self, kind: str, name: str) -> Any:
        """The record of `kind` called `name`, or an error listing the known names."""
        entry = self._by_kind[kind].get(name)
        if entry is None:
            raise UnknownPluginError(kind, name, self.primary_names(kind))
        return entry.record

    def primary_names(self, kind: str) -> list[str]:
        return [entry.name for entry in self.unique_entries(kind)]

    def unique_entries(self, kind: str) -> list[Registered[Any]]:
        seen: dict[int, Registered[Any]] = {}
        for entry in self._by_kind[kind].values():
            seen.setdefault(id(entry.record), entry)
        return list(seen.values())

    def all_entries(self) -> Iterable[Registered[Any]]:
        for kind in self._by_kind:
            yield from self.unique_entries(kind)


@functools.cache
def get_registry() -> PluginRegistry:
    """Return the registry of every installed plugin, built on first use."""
    return PluginRegistry(get_plugin_manager())


def reset_plugins() -> None:
    """Forget the plugin manager and registry, so the next use builds them again."""
    get_registry.cache_clear()
    get_plugin_manager.cache_clear()
