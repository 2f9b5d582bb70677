"""Lint, type checks and tests for every distribution in this repository.

One list, `PACKAGES`, drives every session. All local distributions are installed in one
pip call so that pip never looks for one of ours on an index.
"""

from __future__ import annotations

from pathlib import Path

import nox

PACKAGES = [
    "zocalo-core",
    "zocalo-transport-pika",
    "zocalo-transport-stomp",
    "zocalo-plugin-logging",
    "zocalo-services-contrib",
]

TOOLS = {
    "lint": ["ruff>=0.5"],
    "typecheck": ["mypy>=1.10", "types-PyYAML", "pytest>=7.4"],
    "tests": ["pytest>=7.4", "pytest-timeout>=2.2", "hypothesis>=6"],
}

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


def install_local_packages(session: nox.Session) -> None:
    local = []
    for package in PACKAGES:
        local += [
            "-e",
            f"./{package}[testing]" if package == "zocalo-core" else f"./{package}",
        ]
    session.install(*local)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting of every distribution, the benchmarks and this file."""
    session.install(*TOOLS["lint"])
    session.run("ruff", "check", *PACKAGES, "noxfile.py", "bench", "examples")
    session.run(
        "ruff", "format", "--check", *PACKAGES, "noxfile.py", "bench", "examples"
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy in strict mode on every distribution's `src/`."""
    session.install(*TOOLS["typecheck"])
    install_local_packages(session)
    session.run("mypy", *(f"{package}/src" for package in PACKAGES))


@nox.session
def tests(session: nox.Session) -> None:
    """Every distribution's tests in one pytest run, broker tests included.

    Pass pytest arguments after `--`; `-m "not broker"` skips the broker tests for a
    quick local run (never in CI).
    """
    session.install(*TOOLS["tests"])
    install_local_packages(session)
    test_folders = [f"{package}/tests" for package in PACKAGES]
    present = [folder for folder in test_folders if Path(folder).is_dir()]
    session.run("pytest", *present, *session.posargs)
