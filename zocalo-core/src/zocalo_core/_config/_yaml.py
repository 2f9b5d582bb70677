"""Reading YAML with the safe loader while remembering the line of every key.

Site-file errors must say on which line a block or environment is defined, so the
document is composed into a node tree first (which carries the marks) and then
constructed by the same `yaml.SafeLoader`, exactly as `yaml.safe_load` would.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zocalo_core._config._problems import Location
from zocalo_core._errors import ConfigurationError

#: A path into a document: mapping keys as written, sequence indexes as numbers.
KeyPath = tuple[str | int, ...]

# Deep enough for `environments -> name -> group -> item`; stopping there keeps a
# file full of YAML aliases from making the walk expensive.
_MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class YamlDocument:
    """The data of one YAML file and the line of each key or item, by its path."""

    file: Path
    data: Any
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    def location(self, *path: str | int) -> Location:
        """Where the key or item at `path` is; the file alone if its line is unknown."""
        return Location(self.file, self.lines.get(tuple(path)))


class YamlSyntaxError(ConfigurationError):
    """A file is not valid YAML; `location` and `problem` say where and what."""

    def __init__(self, location: Location, problem: str) -> None:
        self.location = location
        self.problem = problem
        super().__init__(f"{location}: {problem}")


def _index_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if len(path) >= _MAX_INDEX_DEPTH:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                lines[child] = key_node.start_mark.line + 1
                _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item_node in enumerate(node.value):
            child = (*path, index)
            lines[child] = item_node.start_mark.line + 1
            _index_lines(item_node, child, lines)


_QUOTED = re.compile(r"""'([^']*)'|"([^"]*)"|\B![^\s,]*""")
# What the parser itself names, such as ',' or '<stream end>', is safe to repeat.
_PARSER_TOKEN = re.compile(r"[^\w\s]{1,2}|<[a-z ]+>")


def _hide_document_text(match: re.Match[str]) -> str:
    quoted = match.group(1) if match.group(1) is not None else match.group(2)
    if quoted is not None and _PARSER_TOKEN.fullmatch(quoted):
        return match.group(0)
    return "…"


def _without_quotes(text: str) -> str:
    # PyYAML quotes pieces of the document in its problem texts (an alias name, a tag,
    # a character): any of them may be part of a password, so none is repeated.
    return _QUOTED.sub(_hide_document_text, text)


def _syntax_problem(file: Path, exc: yaml.YAMLError) -> YamlSyntaxError:
    # The text of a MarkedYAMLError quotes the offending line, which may hold a
    # password: build the message from its parts and never from str(exc).
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = f"not valid YAML: {_without_quotes(exc.problem or 'syntax error')}"
        if exc.context and exc.context_mark is not None:
            context = _without_quotes(exc.context)
            problem += f" ({context}, line {exc.context_mark.line + 1})"
        elif exc.context:
            problem += f" ({_without_quotes(exc.context)})"
        location = Location(file, mark.line + 1, mark.column + 1)
        return YamlSyntaxError(location, problem)
    if isinstance(exc, yaml.reader.ReaderError):
        where = Location(file)
        return YamlSyntaxError(
            where, f"not valid YAML: {exc.reason} at byte {exc.position}"
        )
    return YamlSyntaxError(Location(file), f"not valid YAML: {type(exc).__name__}")


def parse_yaml(content: bytes | str, file: Path) -> YamlDocument:
    """Parse one YAML document with the safe loader; `file` is only for messages."""
    try:
        loader = yaml.SafeLoader(content)
    except yaml.YAMLError as exc:
        # Not chained: PyYAML's own error quotes the line, which may hold a secret.
        raise _syntax_problem(file, exc) from None
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        # Not chained: PyYAML's own error quotes the line, which may hold a secret.
        raise _syntax_problem(file, exc) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return YamlDocument(file, data, lines)


def read_failure(exc: OSError) -> str:
    """A short reason why a file could not be read, for an error message."""
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError) or exc.errno == errno.EACCES:
        return "cannot be read: permission denied"
    return f"cannot be read: {exc.strerror or exc}"


def read_yaml_file(file: Path) -> YamlDocument:
    """Read and parse `file`; OSError is left to the caller, who knows its role."""
    return parse_yaml(file.read_bytes(), file)
