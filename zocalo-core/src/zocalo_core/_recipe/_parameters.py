"""Safe parameter substitution for recipes.

Only three forms are recognised, by a small parser of our own (never `str.format`):

* `{name}` and `{name[key][key]...}` anywhere in a string: replaced by the text of the
  value found, or left exactly as written when the name or a key is not found;
* `{$REPLACE:name[key]...}` as the whole string: replaced by a deep copy of the value
  found, of any type, or by None when it is not found.

Anything else with braces (`{x.y}`, `{x:>4}`, `{x!r}`, `{}`, a lone `{`, JSON text) is
ordinary text. Nothing is ever evaluated: no attribute access, no format specs, no
conversions, and the text of a substituted value is not scanned again.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

#: A field inside a string. Names exclude the characters that `str.format` would treat
#: as attribute access, format spec or conversion, so such fields never match.
_FIELD = re.compile(r"\{([^{}\[\].:!\s]+)((?:\[[^\[\]{}]+\])*)\}")

#: The whole-string form that inserts a copy of the value itself.
_REPLACE = re.compile(r"\{\$REPLACE:([^{}\[\].:!\s]+)((?:\[[^\[\]{}]+\])*)\}")

_KEY = re.compile(r"\[([^\[\]{}]+)\]")

_NOT_FOUND = object()


def apply_parameters(value: Any, parameters: Mapping[str, Any]) -> Any:
    """Return a copy of `value` with every string's parameter fields filled in.

    Dicts (keys included), lists and tuples are walked; other values are copied as they
    are. Neither `value` nor `parameters` is changed. Never raises on odd input.
    """
    if isinstance(value, str):
        return substitute_string(value, parameters)
    if isinstance(value, Mapping):
        return {
            _substitute_key(key, parameters): apply_parameters(item, parameters)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [apply_parameters(item, parameters) for item in value]
    if isinstance(value, tuple):
        return tuple(apply_parameters(item, parameters) for item in value)
    return copy.deepcopy(value)


def substitute_string(text: str, parameters: Mapping[str, Any]) -> Any:
    """Fill in the fields of one string; see the module docstring for the rules.

    Returns a string, except for the `{$REPLACE:...}` form, which returns a deep copy
    of the value (or None).
    """
    whole = _REPLACE.fullmatch(text)
    if whole is not None:
        found = _lookup(parameters, whole.group(1), whole.group(2))
        return None if found is _NOT_FOUND else copy.deepcopy(found)
    return _substitute_inline(text, parameters)


def _substitute_key(key: Any, parameters: Mapping[str, Any]) -> Any:
    # A dict key must stay hashable, so keys only get the inline form.
    if isinstance(key, str):
        return _substitute_inline(key, parameters)
    return key


def _substitute_inline(text: str, parameters: Mapping[str, Any]) -> str:
    if "{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        found = _lookup(parameters, match.group(1), match.group(2))
        if found is _NOT_FOUND:
            return match.group(0)
        return value_as_text(found)

    return _FIELD.sub(replace, text)


def _lookup(parameters: Mapping[str, Any], name: str, keys: str) -> Any:
    current = _index(parameters, name)
    for key in _KEY.findall(keys):
        if current is _NOT_FOUND:
            break
        current = _index(current, key)
    return current


def _index(container: Any, key: str) -> Any:
    if isinstance(container, Mapping):
        if key in container:
            return container[key]
        if _is_number(key) and int(key) in container:
            return container[int(key)]
        return _NOT_FOUND
    if isinstance(container, (list, tuple)) and _is_number(key):
        position = int(key)
        return container[position] if position < len(container) else _NOT_FOUND
    return _NOT_FOUND


def _is_number(key: str) -> bool:
    # isdigit() alone accepts characters such as "²" that int() refuses.
    return key.isascii() and key.isdigit()


def value_as_text(value: Any) -> str:
    """How a found value appears inside a string.

    Strings as they are; dicts and lists as compact JSON text; everything else (numbers,
    booleans, None) as `str()`, which is what recipes written for the existing system
    expect (`{ispyb_dcid}` with 1234 gives `1234`).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=str)
        except (TypeError, ValueError):
            # Circular or otherwise unencodable containers still get some text.
            return str(value)
    return str(value)
