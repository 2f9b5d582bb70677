"""`zocalo run`: the whole job in one process, its progress, summary and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from zocalo_core._cli.main import main

REPOSITORY = Path(__file__).resolve().parents[3]
EXAMPLE_RECIPE = REPOSITORY / "examples" / "recipes" / "example.json"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site like examples/site.yml, with its folders inside the test's own folder."""
    (tmp_path / "recipes").mkdir()
    shutil.copy(EXAMPLE_RECIPE, tmp_path / "recipes" / "example.json")
    for folder in ("data", "results"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "site.yml"
    path.write_text(
        "version: 1\n"
        "storage:\n  plugin: storage\n  zocalo.recipe_directory: recipes\n"
        "runner:\n  plugin: runner\n  programs: [sha256sum, stat, sleep]\n"
        "  working_roots: [data]\n  output_roots: [results]\n"
        f"  state_directory: {tmp_path / 'runner-state'}\n"
        "environments:\n  default: [storage, runner]\n"
    )
    return path


def run_cli(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def results_of(site: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [json.loads(line) for line in path.read_text().splitlines()]
        for path in (site.parent / "results").iterdir()
    }


def test_the_example_job_gives_one_result_line_per_input_file(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = site.parent / "data"
    for number in range(3):
        (data / f"image_{number}.txt").write_text(f"frame {number}\n")

    exit_code, output = run_cli(
        ["run", "-c", str(site), "-r", "example", "-s", f"workingdir={data}", "1234"],
        capsys,
    )

    assert exit_code == 0, output
    recipe_id = output.split()[1].rstrip(":")
    assert "starting Dispatcher, FileWatcher, JSONLines, Runner" in output
    assert "messages handled" in output
    assert "finished: every step succeeded" in output
    results = results_of(site)
    assert list(results) == [f"{recipe_id}.jsonl"]
    lines = results[f"{recipe_id}.jsonl"]
    assert sorted(Path(line["file"]).name for line in lines) == [
        "image_0.txt",
        "image_1.txt",
        "image_2.txt",
    ]
    assert all(line["exit_code"] == 0 for line in lines)


def test_a_rerun_sees_the_same_inputs_and_writes_a_new_file(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = site.parent / "data"
    (data / "only.txt").write_text("one\n")
    arguments = [
        "run",
        "-c",
        str(site),
        "-r",
        "example",
        "-s",
        f"workingdir={data}",
        "5",
    ]

    assert run_cli(arguments, capsys)[0] == 0
    assert run_cli(arguments, capsys)[0] == 0

    results = results_of(site)
    assert len(results) == 2
    outputs = [[line["stdout"] for line in lines] for lines in results.values()]
    assert outputs[0] == outputs[1]


def test_a_queue_no_service_consumes_is_an_error_before_anything_starts(
    site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recipe = tmp_path / "custom.json"
    recipe.write_text(json.dumps({"1": {"queue": "nowhere"}, "start": [[1, {}]]}))

    exit_code, output = run_cli(
        ["run", "-c", str(site), "-f", str(recipe), "-n"], capsys
    )

    assert exit_code == 1
    assert "node 1 sends to queue 'nowhere'" in output
    assert "starting" not in output


def test_a_failing_step_makes_the_run_fail(
    site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = site.parent / "data"
    recipe = json.loads(EXAMPLE_RECIPE.read_text())
    recipe["2"]["parameters"]["command"] = ["stat", "{file}.missing"]
    (data / "a.txt").write_text("a\n")
    path = tmp_path / "failing.json"
    path.write_text(json.dumps(recipe))

    exit_code, output = run_cli(
        ["run", "-c", str(site), "-f", str(path), "-s", f"workingdir={data}", "-n"],
        capsys,
    )

    assert exit_code == 1
    assert "failure: step 4 on 'jsonlines'" in output
    [failures] = [
        lines for name, lines in results_of(site).items() if "failures" in name
    ]
    assert failures[0]["exit_code"] != 0


def test_a_dead_lettered_message_makes_the_run_fail(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = site.parent / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("a\n")

    exit_code, output = run_cli(
        ["run", "-c", str(site), "-r", "example", "-s", f"workingdir={outside}", "9"],
        capsys,
    )

    assert exit_code == 1
    assert "dead-lettered: 1 in dlq.runner" in output


def test_the_timeout_ends_the_run_with_exit_code_3(
    site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = site.parent / "data"
    recipe = json.loads(EXAMPLE_RECIPE.read_text())
    recipe["2"]["parameters"]["command"] = ["sleep", "30"]
    (data / "a.txt").write_text("a\n")
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(recipe))

    exit_code, output = run_cli(
        [
            "run",
            "-c",
            str(site),
            "-f",
            str(path),
            "-s",
            f"workingdir={data}",
            "-n",
            "--timeout",
            "2",
        ],
        capsys,
    )

    assert exit_code == 3
    assert "timed out" in output


def test_a_broker_transport_is_refused(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, output = run_cli(
        ["run", "-c", str(site), "-t", "pika", "-r", "example", "1"], capsys
    )

    assert exit_code == 2
    assert "zocalo run uses the embedded transport" in output


def test_a_chained_recipe_is_followed_too_and_a_stuck_one_fails_the_run(
    site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chained = {"1": {"queue": "nobody.home"}, "start": [[1, {}]]}
    recipe = {
        "1": {"queue": "processing_recipe"},
        "start": [[1, {"custom_recipe": chained}]],
    }
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(recipe))

    exit_code, output = run_cli(
        ["run", "-c", str(site), "-f", str(path), "-n", "--timeout", "20"], capsys
    )

    assert exit_code == 1
    assert "stuck: messages wait on 'nobody.home'" in output
    assert "every step succeeded" not in output
