"""include: depth-first reading, overriding, relative paths, missing files, cycles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from zocalo_core import ConfigurationError, load
from zocalo_core._config._blocks import BlockDefinition

Write = Callable[[str, str], Path]


def test_a_missing_include_names_the_including_file_and_the_path(write: Write) -> None:
    site = write("site.yml", "version: 1\ninclude:\n  - extra/more.yml\n")
    missing = site.parent / "extra" / "more.yml"

    with pytest.raises(ConfigurationError) as caught:
        load(site)

    assert str(caught.value) == (
        f"{site}, line 3: `include`: the included file 'extra/more.yml' ({missing}) "
        "does not exist"
    )


def test_two_files_including_each_other_is_an_error_showing_the_chain(
    write: Write,
) -> None:
    a = write("a.yml", "version: 1\ninclude: [b.yml]\n")
    b = write("b.yml", "version: 1\ninclude: [a.yml]\n")

    with pytest.raises(ConfigurationError) as caught:
        load(a)

    assert str(caught.value) == (
        f"{b}, line 2: `include`: includes 'a.yml', which closes a cycle: "
        f"{a} -> {b} -> {a}; remove one of these includes"
    )


def test_a_file_including_itself_is_a_cycle(write: Write) -> None:
    a = write("a.yml", "version: 1\ninclude: [./a.yml]\n")

    with pytest.raises(ConfigurationError) as caught:
        load(a)

    assert str(caught.value).endswith(
        f"cycle: {a} -> {a}; remove one of these includes"
    )


def test_included_files_override_blocks_join_plugins_and_replace_groups(
    write: Write,
) -> None:
    write(
        "override.yml",
        """
        version: 1
        settings: {plugin: recorder, origin: included}
        extra: {plugin: recorder}
        environments:
          live:
            plugins: [extra]
            logging: [extra]
        """,
    )
    site = write(
        "site.yml",
        """
        version: 1
        include: [override.yml]
        settings: {plugin: recorder, origin: main}
        base: {plugin: recorder}
        environments:
          live:
            plugins: [base, settings]
            logging: [base]
            tools: [settings]
        """,
    )

    configuration = load(site)
    configuration.activate(["live"])

    assert configuration.describe()["blocks"]["settings"]["settings"] == {
        "origin": "included"
    }
    # groups alphabetically, `plugins` last: logging (replaced), tools, plugins
    # (joined, main file's entries first)
    assert list(configuration.describe()["blocks"]) == ["extra", "settings", "base"]


def test_includes_are_read_depth_first_and_later_ones_win(
    write: Write, config_calls: object
) -> None:
    for name, includes in [("b", "[d.yml]"), ("c", "[]"), ("d", "[]")]:
        write(
            f"{name}.yml",
            f"""
            version: 1
            include: {includes}
            from_{name}: {{plugin: recorder}}
            shared: {{plugin: recorder, file: {name}}}
            environments:
              all: [from_{name}]
            """,
        )
    site = write(
        "a.yml",
        """
        version: 1
        include: [b.yml, c.yml]
        from_a: {plugin: recorder}
        shared: {plugin: recorder, file: a}
        environments:
          all: [from_a, shared]
        """,
    )

    configuration = load(site)
    configuration.activate(["all"])

    assert list(configuration.describe()["blocks"]) == [
        "from_a",
        "shared",
        "from_b",
        "from_d",
        "from_c",
    ]
    assert configuration.block_settings("recorder") == {"file": "c"}
    assert configuration.describe()["files"] == [
        str(site.parent / f"{name}.yml") for name in "abdc"
    ]


def test_an_alias_in_an_included_file_replaces_the_whole_environment(
    write: Write,
) -> None:
    write(
        "more.yml",
        "version: 1\nenvironments:\n  live: embedded\n  embedded: [one]\n",
    )
    site = write(
        "site.yml",
        """
        version: 1
        include: [more.yml]
        one: {plugin: recorder}
        two: {plugin: recorder}
        environments:
          live: [two]
        """,
    )

    configuration = load(site)

    assert configuration.activate(["live"]) == ("live",)
    assert list(configuration.describe()["blocks"]) == ["one"]


def test_include_paths_are_relative_to_the_including_file(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("conf/deeper/leaf.yml", "version: 1\nleaf: {plugin: recorder}\n")
    write("conf/middle.yml", "version: 1\ninclude: [deeper/leaf.yml]\n")
    site = write("conf/site.yml", "version: 1\ninclude: [middle.yml]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert load(site).blocks == frozenset({"leaf"})


def test_include_paths_expand_the_home_directory(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("home/shared.yml", "version: 1\nshared: {plugin: recorder}\n")
    site = write("site.yml", "version: 1\ninclude: ['~/shared.yml']\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert load(site).blocks == frozenset({"shared"})


def test_an_included_file_needs_a_version_too(write: Write) -> None:
    more = write("more.yml", "storage: {plugin: storage}\n")
    site = write("site.yml", "version: 1\ninclude: [more.yml]\n")

    with pytest.raises(ConfigurationError) as caught:
        load(site)

    assert str(caught.value) == (
        f"{more}: there is no `version` key; add `version: 1` at the top"
    )


def test_block_definitions_keep_the_file_that_declared_them(write: Write) -> None:
    more = write("sub/more.yml", "version: 1\nrmq: rmq.yml\n")
    site = write("site.yml", "version: 1\ninclude: [sub/more.yml]\n")

    configuration = load(site)

    assert configuration._parsed is not None
    definition = configuration._parsed.blocks["rmq"]
    assert isinstance(definition, BlockDefinition)
    assert definition.declared_at.file == more
    assert definition.block_file == more.parent / "rmq.yml"
