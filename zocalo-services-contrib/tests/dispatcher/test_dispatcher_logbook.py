"""The Dispatcher's logbook, and what the Dispatcher logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import SiteConfiguration
from zocalo_services_contrib._dispatcher_logbook import Logbook

WAIT = 10.0
SECTIONS = (
    "Incoming message header:",
    "Incoming message body:",
    "Parsed message body:",
    "Recipe object:",
)


def write(logbook: Logbook, recipe_id: str, **overrides: Any) -> Path | None:
    entry: dict[str, Any] = {
        "headers": {"zocalo.go.user": "someone"},
        "incoming": {"recipes": ["first"]},
        "parsed": {"recipes": ["first"], "parameters": {"guid": recipe_id}},
        "recipe": {"1": {"queue": "q"}, "start": [[1, {}]]},
    }
    entry.update(overrides)
    return logbook.write(recipe_id, **entry)


def test_an_entry_has_four_sections_in_order(tmp_path: Path) -> None:
    path = write(Logbook(tmp_path), "0123-abcd")

    assert path == tmp_path / time.strftime("%Y-%m") / "01" / "23-abcd"
    text = path.read_text()
    positions = [text.index(title) for title in SECTIONS]
    assert positions == sorted(positions)
    assert '"zocalo.go.user": "someone"' in text


def test_entries_are_never_overwritten(tmp_path: Path) -> None:
    logbook = Logbook(tmp_path)

    paths = [write(logbook, "same-id", incoming=n) for n in range(3)]

    assert [path.name for path in paths if path] == ["me-id", "me-id.1", "me-id.2"]
    for number, path in enumerate(paths):
        assert path is not None
        assert f"Incoming message body:\n{number}\n" in path.read_text()


def test_every_unsafe_character_is_removed_from_the_file_name(tmp_path: Path) -> None:
    recipe_id = "ab" + "/." * 40 + "cd"

    path = write(Logbook(tmp_path), recipe_id)

    assert path == tmp_path / time.strftime("%Y-%m") / "ab" / "cd"


def test_a_recipe_id_too_short_for_a_file_name_is_not_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert write(Logbook(tmp_path), "a/.b") is None

    assert list(tmp_path.iterdir()) == []
    assert any(
        record.levelno == logging.WARNING and "'a/.b'" in record.getMessage()
        for record in caplog.records
    )


def test_values_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    path = write(Logbook(tmp_path), "odd-values", parsed={1: {"path": Path("/x")}})

    assert path is not None
    assert '"1": {\n    "path": "/x"' in path.read_text()


def test_a_write_failure_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the month's folder should be makes every write fail.
    (tmp_path / time.strftime("%Y-%m")).write_text("")

    assert write(Logbook(tmp_path), "abc-def") is None

    assert [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "abc-def" in record.getMessage()
    ]


def test_a_disabled_logbook_writes_nothing(tmp_path: Path) -> None:
    assert not Logbook(None).enabled
    assert write(Logbook(None), "abc-def") is None


def test_the_logbook_is_disabled_at_info_when_unset_or_unusable(
    make_site: Callable[..., SiteConfiguration],
    site_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    (site_dir / "a-file").write_text("")

    unset = Logbook.from_site(make_site())
    unusable = Logbook.from_site(
        make_site(**{"zocalo.dispatcher.logbook_location": "a-file/book"})
    )
    usable = Logbook.from_site(
        make_site(**{"zocalo.dispatcher.logbook_location": "book"})
    )

    assert not unset.enabled
    assert not unusable.enabled
    assert usable.directory == site_dir / "book"
    assert usable.directory.is_dir()
    disabled = [
        record for record in caplog.records if "logbook disabled" in record.getMessage()
    ]
    assert [record.levelno for record in disabled] == [logging.INFO, logging.INFO]
    assert "not set" in disabled[0].getMessage()
    assert "a-file" in disabled[1].getMessage()


def test_request_values_never_reach_the_logs(
    run_dispatcher: Any,
    collect: Any,
    send_request: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = collect("q.first")
    run_dispatcher()

    send_request(
        {"recipes": ["first"], "parameters": {"password": "hunter2-secret"}},
        headers={"authorization": "token-secret"},
    )

    first.wait_for(1, WAIT)
    assert any("started recipe" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert "secret" not in record.getMessage()


def test_a_recipe_directory_that_is_not_a_path_stops_the_dispatcher_at_start(
    run_dispatcher: Any,
    make_site: Callable[..., SiteConfiguration],
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = run_dispatcher(site=make_site(**{"zocalo.recipe_directory": 5}))

    running.thread.join(WAIT)

    assert not running.thread.is_alive()
    assert running.exit_code != 0
    assert "zocalo.recipe_directory" in caplog.text
