"""Environments: aliases, cycles, references, flattening order, line numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from zocalo_core import ConfigurationError, load
from zocalo_core._config._environments import flatten_groups
from zocalo_core._config._files import Entry
from zocalo_core._config._problems import Location

Write = Callable[[str, str], Path]


def test_aliases_in_a_cycle_are_an_error_showing_the_cycle(write: Write) -> None:
    path = write("site.yml", "version: 1\nenvironments:\n  a: b\n  b: a\n")

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert caught.value.problems == (  # type: ignore[attr-defined]
        f"{path}, line 3: environment 'a': is an alias in a cycle: a -> b -> a; make "
        "one of these a list of blocks",
        f"{path}, line 4: environment 'b': is an alias in a cycle: b -> a -> b; make "
        "one of these a list of blocks",
    )


def test_an_alias_of_an_undefined_environment_is_an_error(write: Write) -> None:
    path = write(
        "site.yml",
        "version: 1\nenvironments:\n  live: [ ]\n  default: production\n",
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 4: environment 'default': is an alias of 'production', which "
        "is not defined; defined environments: default, live"
    )


def test_an_alias_of_a_block_says_how_to_use_the_block(write: Write) -> None:
    path = write(
        "site.yml",
        "version: 1\nstorage: {plugin: storage}\nenvironments:\n  s: storage\n",
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 4: environment 's': is an alias of 'storage', which is a "
        "block, not an environment; write `s: [storage]` to use the block"
    )


def test_alias_chains_are_followed(write: Write) -> None:
    path = write(
        "site.yml",
        """
        version: 1
        one: {plugin: recorder}
        environments:
          default: staging
          staging: live
          live: [one]
        """,
    )

    configuration = load(path)

    assert configuration.environments == frozenset({"default", "staging", "live"})
    assert configuration.activate() == ("default",)
    assert configuration.active_environments == ("default",)
    assert list(configuration.describe()["blocks"]) == ["one"]


def test_an_environment_listing_an_undefined_block_is_an_error(write: Write) -> None:
    path = write(
        "site.yml",
        """
        version: 1
        storage: {plugin: storage}
        environments:
          live:
            - storage
            - rabbit
        """,
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 6: environment 'live': lists block 'rabbit', which is not "
        "defined; defined blocks: storage"
    )


def test_an_environment_listing_include_is_an_error(write: Write) -> None:
    path = write(
        "site.yml",
        """
        version: 1
        include: []
        storage: {plugin: storage}
        environments:
          live:
            plugins: [storage]
            extra: include
        """,
    )

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 7: environment 'live': lists 'include', which is a reserved "
        "top-level key, not a block; remove it from the list"
    )


@pytest.mark.parametrize(
    ("definition", "found"),
    [("7", "a number"), ("~", "empty"), ("''", "empty")],
)
def test_an_environment_of_the_wrong_shape_is_an_error(
    write: Write, definition: str, found: str
) -> None:
    path = write("site.yml", f"version: 1\nenvironments:\n  live: {definition}\n")

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 3: environment 'live': is {found}; an environment is a list "
        "of block names, a mapping of groups to such lists, or the name of another "
        "environment"
    )


def test_a_group_of_the_wrong_shape_is_an_error(write: Write) -> None:
    path = write("site.yml", "version: 1\nenvironments:\n  live:\n    tools: 3\n")

    with pytest.raises(ConfigurationError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}, line 4: environment 'live': group 'tools' is a number; give a list "
        "of block names"
    )


def test_groups_flatten_alphabetically_with_plugins_last_and_no_repeats(
    write: Write,
) -> None:
    names = ["a", "b", "c", "d", "e"]
    blocks = "".join(f"{name}: {{plugin: recorder}}\n" for name in names)
    path = write(
        "site.yml",
        "version: 1\n"
        + blocks
        + """
environments:
  live:
    plugins: [a, e]
    zeta: [d, b]
    alpha: c
    middle: [b, a]
""",
    )

    configuration = load(path)
    configuration.activate(["live"])

    assert list(configuration.describe()["blocks"]) == ["c", "b", "a", "d", "e"]


def test_a_list_environment_keeps_its_order_and_drops_repeats() -> None:
    here = Location(Path("site.yml"), 1)
    groups = {"plugins": tuple(Entry(name, here) for name in ["z", "a", "z", "m"])}

    assert [entry.block for entry in flatten_groups(groups)] == ["z", "a", "m"]


def test_an_empty_environment_is_allowed(write: Write) -> None:
    path = write("site.yml", "version: 1\nenvironments:\n  quiet: {}\n")

    configuration = load(path)

    assert configuration.activate(["quiet"]) == ("quiet",)
    assert configuration.describe()["blocks"] == {}
