"""Where a site-file problem is, and how several problems travel in one error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from zocalo_core._errors import ConfigurationError


@dataclass(frozen=True)
class Location:
    """A file and, when YAML told us, the 1-based line (and column) in it."""

    file: Path
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return str(self.file)
        if self.column is None:
            return f"{self.file}, line {self.line}"
        return f"{self.file}, line {self.line}, column {self.column}"


class ConfigurationProblems(ConfigurationError):
    """One or more problems found in a site configuration, each a full sentence.

    The message is the first problem (the command line shows one line); `problems`
    holds all of them for `zocalo config check`.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        message = self.problems[0]
        if len(self.problems) > 1:
            others = len(self.problems) - 1
            noun = "problem" if others == 1 else "problems"
            message += (
                f" (and {others} more {noun}; `zocalo config check FILE` lists all)"
            )
        super().__init__(message)


class Problems:
    """Collects problems so that one pass over a site file can report all of them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, location: Location, subject: str, message: str) -> None:
        prefix = f"{location}: {subject}: " if subject else f"{location}: "
        self.messages.append(prefix + message)

    def extend(self, messages: Sequence[str]) -> None:
        self.messages.extend(messages)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_if_any(self) -> None:
        if self.messages:
            # An environment's blocks are checked once per environment that lists
            # them, so a broken shared block would otherwise be reported repeatedly.
            raise ConfigurationProblems(list(dict.fromkeys(self.messages)))


def describe_value(value: object) -> str:
    """What kind of YAML value this is, in words for an error message."""
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"
