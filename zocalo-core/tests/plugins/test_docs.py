"""Every hook is documented for plugin authors."""

from __future__ import annotations

import inspect
from pathlib import Path

from zocalo_core import hookspecs

PLUGINS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [
        name for name, _ in inspect.getmembers(hookspecs) if name.startswith("zocalo_")
    ]


def test_there_are_hooks_to_document() -> None:
    assert len(hook_names()) == 7


def test_every_hook_has_a_section_on_the_plugins_page() -> None:
    page = PLUGINS_PAGE.read_text(encoding="utf-8")

    missing = [name for name in hook_names() if f"### `{name}`" not in page]

    assert missing == []


def test_every_hookspec_docstring_has_an_example_and_says_what_none_means() -> None:
    for name in hook_names():
        docstring = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Example::" in docstring, name
        assert "`None`" in docstring, name
