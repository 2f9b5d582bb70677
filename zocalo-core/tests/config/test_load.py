"""load(): choosing the file, the version, YAML errors and value semantics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from zocalo_core import ConfigurationError, SiteConfiguration, load
from zocalo_core._config import ConfigurationProblems

Write = Callable[[str, str], Path]

SIMPLE = """
version: 1
storage:
  plugin: storage
  zocalo.recipe_directory: recipes
environments:
  default: [storage]
"""


def test_no_path_and_no_variable_gives_an_empty_configuration() -> None:
    site = load()

    assert site.path is None
    assert site.environments == frozenset()
    assert site.activate() == ()
    assert site.storage == {}


def test_an_empty_path_falls_back_to_zocalo_config(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write("site.yml", SIMPLE)
    monkeypatch.setenv("ZOCALO_CONFIG", str(path))

    assert load().path == path.resolve()
    assert load("").path == path.resolve()


def test_a_given_path_beats_zocalo_config(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = write("given.yml", SIMPLE)
    monkeypatch.setenv("ZOCALO_CONFIG", str(write("other.yml", SIMPLE)))

    assert load(given).path == given.resolve()


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"

    with pytest.raises(ConfigurationError) as caught:
        load(missing)

    assert str(caught.value) == (
        f"site configuration file {missing} does not exist; check the path"
    )


def test_a_missing_file_from_zocalo_config_says_where_the_path_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.yml"
    monkeypatch.setenv("ZOCALO_CONFIG", str(missing))

    with pytest.raises(ConfigurationError, match=r"\(from ZOCALO_CONFIG\) does not"):
        load()


def test_version_2_is_refused(write: Write) -> None:
    path = write("site.yml", "version: 2\n")

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 1: `version: 2` is not supported; this Zocalo reads version 1 "
        "site files only"
    )


def test_a_missing_version_is_refused(write: Write) -> None:
    path = write("site.yml", "storage: {plugin: storage}\n")

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}: there is no `version` key; add `version: 1` at the top"
    )


@pytest.mark.parametrize(
    ("text", "found"), [("", "empty"), ("- 1\n- 2\n", "a list"), ("7\n", "a number")]
)
def test_a_top_level_that_is_not_a_mapping_is_refused(
    write: Write, text: str, found: str
) -> None:
    path = write("site.yml", text)

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}: the file is {found}; a site file is a mapping with `version: 1`"
    )


def test_a_yaml_syntax_error_gives_the_line_and_not_the_text(write: Write) -> None:
    path = write(
        "site.yml",
        """
        version: 1
        broker:
          plugin: broker
          password: "hunter2-unterminated
        """,
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    message = str(caught.value)
    assert message == (
        f"{path}, line 5, column 1: not valid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar, line 4)"
    )
    assert "hunter2" not in message


def test_every_problem_is_collected_and_the_first_is_the_message(write: Write) -> None:
    path = write(
        "site.yml",
        """
        version: 1
        nameless: {host: x}
        environments:
          live: [missing]
        """,
    )

    with pytest.raises(ConfigurationProblems) as caught:
        load(path)

    assert caught.value.problems == (
        f"{path}, line 2: block 'nameless': has no `plugin` key; add `plugin: <name>` "
        "naming the configuration plugin that reads this block",
        f"{path}, line 4: environment 'live': lists block 'missing', which is not "
        "defined; defined blocks: nameless",
    )
    assert str(caught.value) == (
        f"{caught.value.problems[0]} (and 1 more problem; `zocalo config check FILE` "
        "lists all)"
    )


def test_two_loads_of_one_file_are_independent_objects(write: Write) -> None:
    path = write("site.yml", SIMPLE)

    first = load(path)
    first.activate()
    path.write_text(SIMPLE.replace("recipes", "elsewhere"))
    second = load(path)

    assert isinstance(second, SiteConfiguration)
    assert second is not first
    assert second.active_environments == ()
    assert second.plugin("storage") is None
    second.activate()
    assert first.storage == {"zocalo.recipe_directory": "recipes"}
    assert second.storage == {"zocalo.recipe_directory": "elsewhere"}


def test_changing_what_one_object_returns_leaves_another_alone(write: Write) -> None:
    path = write("site.yml", SIMPLE)
    first, second = load(path), load(path)
    first.activate()
    second.activate()

    first.plugin("storage")["zocalo.recipe_directory"] = "changed"

    assert second.storage == {"zocalo.recipe_directory": "recipes"}
