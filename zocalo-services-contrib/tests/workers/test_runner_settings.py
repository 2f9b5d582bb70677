"""The `runner` config plugin and the path checks shared by the services."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from zocalo_core import ConfigurationError, RejectMessage
from zocalo_services_contrib._settings import (
    RunnerSettings,
    resolve_under_roots,
    runner_settings,
)


def settings_of(site: Any) -> RunnerSettings:
    settings = site.plugin("runner")
    assert isinstance(settings, RunnerSettings)
    return settings


def test_program_names_are_pinned_to_their_path_when_activated(
    make_site: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sha256sum = shutil.which("sha256sum")
    assert real_sha256sum is not None
    settings = settings_of(make_site({"programs": ["sha256sum", "/usr/bin/echo"]}))
    impostor_directory = tmp_path / "bin"
    impostor_directory.mkdir()
    impostor = impostor_directory / "sha256sum"
    impostor.write_text("#!/bin/sh\necho impostor\n")
    impostor.chmod(0o755)
    monkeypatch.setenv("PATH", str(impostor_directory))

    assert settings.program_path("sha256sum") == os.path.abspath(real_sha256sum)
    assert settings.program_path("/usr/bin/echo") == "/usr/bin/echo"
    assert settings.program_path(str(impostor)) is None


def test_programs_not_listed_are_not_allowed(make_site: Any) -> None:
    settings = settings_of(make_site({"programs": ["sha256sum"]}))

    assert settings.program_path("rm") is None
    assert settings.program_path("/usr/bin/rm") is None
    assert settings.program_path("./sha256sum") is None
    assert settings.program_path("") is None


def test_links_to_one_binary_stay_distinct_programs(
    make_site: Any, tmp_path: Path
) -> None:
    # Multi-call binaries (busybox) are many programs behind one file: allowing
    # one of its names must not allow the others.
    (tmp_path / "allowed").symlink_to("/usr/bin/echo")
    (tmp_path / "other").symlink_to("/usr/bin/echo")
    settings = settings_of(make_site({"programs": [str(tmp_path / "allowed")]}))

    assert settings.program_path(str(tmp_path / "allowed")) == str(tmp_path / "allowed")
    assert settings.program_path(str(tmp_path / "other")) is None
    assert settings.program_path("/usr/bin/echo") is None


def test_a_program_missing_on_this_host_warns_and_is_not_allowed(
    make_site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_of(make_site({"programs": ["no-such-program-zocalo"]}))

    assert settings.programs == ()
    assert any(
        "no-such-program-zocalo" in record.getMessage()
        and record.levelno == logging.WARNING
        for record in caplog.records
    )


def test_a_relative_program_path_is_a_configuration_error(make_site: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"bin/tool.*absolute path"):
        make_site({"programs": ["bin/tool"]})


def test_relative_roots_are_relative_to_the_site_file(
    make_site: Any, tmp_path: Path
) -> None:
    (tmp_path / "work").mkdir()
    settings = settings_of(
        make_site(
            {
                "working_roots": ["work"],
                "output_roots": ["results"],
                "state_directory": "work/.state",
            }
        )
    )

    assert settings.working_roots == (tmp_path.resolve() / "work",)
    assert settings.output_roots == (tmp_path.resolve() / "results",)
    assert settings.state_directory == tmp_path.resolve() / "work" / ".state"


def test_defaults_and_overrides(make_site: Any, state_home: Path) -> None:
    defaults = settings_of(make_site({}))
    tuned = settings_of(
        make_site(
            {"default_timeout": 60, "max_output": 100, "max_jobs": 2},
            name="tuned.yml",
        )
    )

    assert defaults.default_timeout == 3600
    assert defaults.max_output == 4096
    assert defaults.state_directory == state_home / "zocalo" / "runner"
    assert (tuned.default_timeout, tuned.max_output, tuned.max_jobs) == (60, 100, 2)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({"default_timeout": 0}, "default_timeout"),
        ({"max_output": 0}, "max_output"),
        ({"programs": ["echo", 3]}, "programs"),
        ({"heartbeat_interval": 5, "stale_after": 5}, "stale_after"),
    ],
)
def test_bad_values_are_configuration_errors(
    make_site: Any, block: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make_site(block)


def test_without_a_runner_block_services_are_told_to_add_one(make_site: Any) -> None:
    for site in (make_site(None), None):
        with pytest.raises(RejectMessage, match=r"no active `runner` block.*add"):
            runner_settings(site, "the Runner", "run any command")


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    (tmp_path / "root" / "inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "escape").symlink_to(tmp_path / "outside")
    return [(tmp_path / "root").resolve()]


def check(path: str | Path, roots: list[Path], **options: Any) -> Path:
    return resolve_under_roots(
        path, roots, what="working directory", setting="working_roots", **options
    )


def test_a_path_inside_a_root_is_resolved(roots: list[Path]) -> None:
    assert check(roots[0] / "inside" / ".." / "inside", roots) == roots[0] / "inside"


@pytest.mark.parametrize("escape", ["inside/../../outside", "escape", "escape/x"])
def test_dot_dot_and_symlinks_cannot_leave_the_roots(
    roots: list[Path], escape: str
) -> None:
    with pytest.raises(RejectMessage, match="outside the `working_roots`"):
        check(roots[0] / escape, roots)


def test_relative_paths_are_refused_unless_asked_for(roots: list[Path]) -> None:
    with pytest.raises(RejectMessage, match="not an absolute path"):
        check("inside", roots)

    assert check("inside", roots, relative_to_first_root=True) == roots[0] / "inside"
    with pytest.raises(RejectMessage, match="outside"):
        check("../outside", roots, relative_to_first_root=True)


def test_no_roots_means_no_path_is_allowed(roots: list[Path]) -> None:
    with pytest.raises(RejectMessage, match="lists no `working_roots`"):
        check(roots[0] / "inside", [])
