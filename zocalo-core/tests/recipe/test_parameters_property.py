"""Property tests of parameter substitution, with hypothesis."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies
from zocalo_core._recipe import apply_parameters
from zocalo_core._recipe._parameters import substitute_string

KNOWN = {"zz_known": "VALUE", "zz_list": [1, 2], "zz_map": {"k": "v"}}


def mentions_a_known_name(text: str) -> bool:
    return any(name in text for name in KNOWN)


@hypothesis.given(strategies.text())
@hypothesis.settings(max_examples=400, deadline=None, database=None)
def test_strings_without_a_known_name_come_back_unchanged(text: str) -> None:
    hypothesis.assume(not mentions_a_known_name(text))
    hypothesis.assume(not text.startswith("{$REPLACE:"))

    assert substitute_string(text, KNOWN) == text


brace_heavy = strategies.text(alphabet="{}[]$:!.x0 zREPLACE_known", max_size=40)


@hypothesis.given(brace_heavy)
@hypothesis.settings(max_examples=400, deadline=None, database=None)
def test_brace_heavy_strings_never_raise_and_keep_unknown_fields(text: str) -> None:
    result = substitute_string(text, {"x": "X"})

    if not text.startswith("{$REPLACE:"):
        assert isinstance(result, str)
    if "{x}" not in text and not text.startswith("{$REPLACE:"):
        assert result == text


json_values = strategies.recursive(
    strategies.none()
    | strategies.booleans()
    | strategies.integers()
    | strategies.text(),
    lambda inner: (
        strategies.lists(inner) | strategies.dictionaries(strategies.text(), inner)
    ),
    max_leaves=20,
)


@hypothesis.given(json_values)
@hypothesis.settings(max_examples=200, deadline=None, database=None)
def test_values_without_known_names_are_equal_copies(value: object) -> None:
    hypothesis.assume(not mentions_a_known_name(repr(value)))
    hypothesis.assume("$REPLACE:" not in repr(value))

    assert apply_parameters(value, KNOWN) == value
