"""The Runner: what it runs, where, and what it reports."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from zocalo_services_contrib._runner import Runner

OUTPUTS = {"success": "out.success", "failure": "out.failure"}
PROGRAMS = ["sha256sum", "printf", "env", "sh", sys.executable]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "work" / "job"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def site(make_site: Any, tmp_path: Path, workdir: Path) -> Any:
    return make_site(
        {
            "programs": PROGRAMS,
            "working_roots": [str(tmp_path / "work")],
            "lease_interval": 0.2,
            "heartbeat_interval": 0.05,
            "stale_after": 1.0,
        }
    )


@pytest.fixture
def outputs(collect: Any) -> dict[str, Any]:
    outputs = {name: collect(queue) for name, queue in OUTPUTS.items()}
    outputs["dead"] = collect("dlq.runner")
    return outputs


def run_step(workdir: Path, command: list[str], **parameters: Any) -> dict[str, Any]:
    return {
        "service": "Runner",
        "queue": "runner",
        "parameters": {"command": command, "workdir": str(workdir), **parameters},
    }


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_command_runs_on_the_payload_file_and_reports_success(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    data = workdir / "input.txt"
    data.write_bytes(b"some data\n")
    run_service(Runner, site)
    payload = {"file": str(data), "name": "input.txt", "index": 0}

    tools.start_step(run_step(workdir, ["sha256sum", "{file}"]), payload, OUTPUTS)

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    digest = hashlib.sha256(b"some data\n").hexdigest()
    assert result["stdout"] == f"{digest}  {data}\n"
    assert result["exit_code"] == 0
    assert result["command"] == ["sha256sum", str(data)]
    assert result["workdir"] == str(workdir.resolve())
    assert result["file"] == str(data)
    assert result["input"] == payload
    assert 0 <= result["duration"] < 5
    assert result["timed_out"] is False
    assert result["error"] is None
    assert outputs["failure"].bodies == []


def test_a_non_zero_exit_is_reported_as_failure(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    run_service(Runner, site)
    code = "import sys; sys.stderr.write('broken input'); sys.exit(3)"

    tools.start_step(run_step(workdir, python(code)), {}, OUTPUTS)

    [message] = outputs["failure"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    assert (result["exit_code"], result["stderr"]) == (3, "broken input")
    assert outputs["success"].bodies == []


def test_the_command_runs_in_its_working_directory(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    run_service(Runner, site)

    tools.start_step(
        run_step(workdir, python("import os; print(os.getcwd())")), {}, OUTPUTS
    )

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    assert message.body["payload"]["stdout"].strip() == str(workdir.resolve())


def test_shell_metacharacters_are_passed_literally(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    run_service(Runner, site)
    nasty = "$(touch pwned); `touch pwned2` && touch pwned3 | cat > out *"

    tools.start_step(run_step(workdir, ["printf", "%s", nasty]), {}, OUTPUTS)

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    assert message.body["payload"]["stdout"] == nasty
    assert sorted(path.name for path in workdir.iterdir()) == []


def test_the_environment_is_minimal_but_keeps_path(
    run_service: Any,
    tools: Any,
    site: Any,
    workdir: Path,
    outputs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZOCALO_TEST_SECRET", "do-not-pass-on")
    run_service(Runner, site)

    tools.start_step(run_step(workdir, ["env"]), {}, OUTPUTS)

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    names = {
        line.split("=", 1)[0] for line in message.body["payload"]["stdout"].split()
    }
    assert "PATH" in names
    assert "ZOCALO_TEST_SECRET" not in names


def test_a_program_not_allowed_is_rejected_and_nothing_runs(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    marker = workdir / "marker"
    run_service(Runner, site)

    tools.start_step(run_step(workdir, ["touch", str(marker)]), {}, OUTPUTS)

    [message] = outputs["dead"].wait_for(1, tools.WAIT)
    error = tools.death_of(message)["error"]
    assert "'touch' is not allowed" in error
    assert "`programs`" in error
    assert not marker.exists()
    assert outputs["success"].bodies == outputs["failure"].bodies == []


@pytest.mark.parametrize("with_site_file", [True, False])
def test_without_a_runner_block_nothing_runs(
    run_service: Any,
    tools: Any,
    make_site: Any,
    workdir: Path,
    outputs: dict[str, Any],
    with_site_file: bool,
) -> None:
    marker = workdir / "marker"
    run_service(Runner, make_site(None) if with_site_file else None)

    tools.start_step(
        run_step(workdir, python(f"open({str(marker)!r}, 'w')")), {}, OUTPUTS
    )

    [message] = outputs["dead"].wait_for(1, tools.WAIT)
    assert "add a block with `plugin: runner`" in tools.death_of(message)["error"]
    assert not marker.exists()


@pytest.mark.parametrize("escape", ["dotdot", "symlink", "relative"])
def test_a_working_directory_outside_the_roots_is_rejected(
    run_service: Any,
    tools: Any,
    site: Any,
    tmp_path: Path,
    outputs: dict[str, Any],
    escape: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "work" / "link").symlink_to(outside)
    workdir = {
        "dotdot": f"{tmp_path}/work/../outside",
        "symlink": f"{tmp_path}/work/link",
        "relative": "work/job",
    }[escape]
    run_service(Runner, site)

    tools.start_step(
        run_step(Path(workdir), python("open('marker', 'w')")), {}, OUTPUTS
    )

    [message] = outputs["dead"].wait_for(1, tools.WAIT)
    assert "working_roots" in tools.death_of(message)["error"]
    assert not (outside / "marker").exists()


def test_a_timeout_kills_the_command_and_reports_failure(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    run_service(Runner, site)
    code = "import time; print('started', flush=True); time.sleep(30)"

    tools.start_step(run_step(workdir, python(code), timeout=0.3), {}, OUTPUTS)

    [message] = outputs["failure"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    assert result["timed_out"] is True
    assert result["exit_code"] < 0
    assert "timeout of 0.3 s" in result["error"]
    assert result["stdout"] == "started\n"
    assert 0.3 <= result["duration"] < 5


def test_only_the_last_4_kib_of_each_output_is_kept(
    run_service: Any, tools: Any, site: Any, workdir: Path, outputs: dict[str, Any]
) -> None:
    run_service(Runner, site)
    code = (
        "import sys\n"
        "for _ in range(200): sys.stdout.write('a' * 1000)\n"
        "sys.stdout.write('b' * 4096)\n"
        "sys.stderr.write('c' * 100000 + 'END')\n"
    )

    tools.start_step(run_step(workdir, python(code)), {}, OUTPUTS)

    [message] = outputs["success"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    assert result["stdout"] == "b" * 4096
    assert len(result["stderr"]) == 4096
    assert result["stderr"].endswith("cEND")


def test_a_program_that_cannot_start_is_reported_as_failure(
    run_service: Any,
    tools: Any,
    make_site: Any,
    tmp_path: Path,
    workdir: Path,
    outputs: dict[str, Any],
) -> None:
    missing = str(tmp_path / "not-installed")
    site = make_site({"programs": [missing], "working_roots": [str(tmp_path / "work")]})
    run_service(Runner, site)

    tools.start_step(run_step(workdir, [missing]), {}, OUTPUTS)

    [message] = outputs["failure"].wait_for(1, tools.WAIT)
    result = message.body["payload"]
    assert result["exit_code"] is None
    assert "could not be started" in result["error"]


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"command": []}, "'command' parameter"),
        ({"command": "sha256sum {file}"}, "'command' parameter"),
        ({"command": ["sha256sum", {"a": 1}]}, "argument 1"),
        ({"workdir": None}, "'workdir' parameter"),
        ({"timeout": "soon"}, "'timeout'"),
    ],
)
def test_unusable_parameters_are_rejected_with_the_reason(
    run_service: Any,
    tools: Any,
    site: Any,
    workdir: Path,
    outputs: dict[str, Any],
    parameters: dict[str, Any],
    reason: str,
) -> None:
    run_service(Runner, site)
    step = run_step(workdir, ["sha256sum"])
    step["parameters"].update(parameters)
    if step["parameters"]["workdir"] is None:
        del step["parameters"]["workdir"]

    tools.start_step(step, {}, OUTPUTS)

    [message] = outputs["dead"].wait_for(1, tools.WAIT)
    assert reason in tools.death_of(message)["error"]
