"""Finding a service by the name a user typed."""

from __future__ import annotations

from collections.abc import Iterable

from zocalo_core._errors import PluginError, UnknownPluginError


def match_service_name(typed: str, known: Iterable[str]) -> str:
    """The known name that `typed` means: exact, any case, then a unique prefix.

    Prefixes are tried case-sensitively first, then case-insensitively. An ambiguous or
    unknown name is an error that lists the candidates.
    """
    names = sorted(set(known))
    if typed in names:
        return typed
    folded = typed.casefold()
    candidate_rounds = [
        [name for name in names if name.casefold() == folded],
        [name for name in names if name.startswith(typed)],
        [name for name in names if name.casefold().startswith(folded)],
    ]
    for candidates in candidate_rounds:
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            choices = ", ".join(candidates)
            message = f"service name {typed!r} is ambiguous; it could be: {choices}"
            raise PluginError(message)
    raise UnknownPluginError("service", typed, names)
