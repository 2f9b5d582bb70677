"""`zocalo recipe`, through click's runner and once through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from zocalo_core._cli.main import cli, main
from zocalo_core._errors import RecipeError

VALID = {
    "1": {"queue": "runner.{beamline}", "output": {"done": 2}},
    "2": {"queue": "jsonlines", "parameters": {"files": "{$REPLACE:files}"}},
    "start": [[1, {"dir": "{workingdir}"}]],
}
INVALID = {"1": {"queue": "a", "output": 7}, "3": {}, "start": [[1, {}]]}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, content in [
        ("valid.json", json.dumps(VALID)),
        ("invalid.json", json.dumps(INVALID)),
        ("broken.json", "{not json"),
    ]:
        path = tmp_path / name
        path.write_text(content)
        paths[name] = str(path)
    paths["missing.json"] = str(tmp_path / "missing.json")
    return paths


def invoke(*arguments: str) -> object:
    return CliRunner().invoke(cli, ["recipe", *arguments])


def test_validate_a_valid_file(files: dict[str, str]) -> None:
    result = invoke("validate", files["valid.json"])

    assert result.exit_code == 0, result.output
    assert result.output == f"{files['valid.json']}: ok\n"


def test_validate_lists_every_problem_of_every_file(files: dict[str, str]) -> None:
    names = ["valid.json", "invalid.json", "broken.json", "missing.json"]

    result = invoke("validate", *(files[name] for name in names))

    assert result.exit_code == 1
    assert isinstance(result.exception, RecipeError)
    assert str(result.exception) == "3 of 4 recipe files are invalid"
    lines = result.output.splitlines()
    assert lines[0] == f"{files['valid.json']}: ok"
    assert lines[1] == f"{files['invalid.json']}: invalid"
    assert lines[2] == "  node 1: output links to node 7, which does not exist"
    assert lines[3].startswith("  node 3: is not reachable from 'start' or 'error'")
    assert lines[4] == f"{files['broken.json']}: invalid"
    assert "not valid JSON" in lines[5]
    assert lines[6] == f"{files['missing.json']}: invalid"
    assert "cannot read recipe file" in lines[7]


def test_validate_of_one_invalid_file_names_it(files: dict[str, str]) -> None:
    result = invoke("validate", files["invalid.json"])

    assert result.exit_code == 1
    assert str(result.exception) == f"recipe file {files['invalid.json']!r} is invalid"


def test_validate_counts_a_single_failure_in_the_singular(
    files: dict[str, str],
) -> None:
    result = invoke("validate", files["valid.json"], files["broken.json"])

    assert str(result.exception) == "1 of 2 recipe files is invalid"


def test_validate_needs_a_file() -> None:
    assert invoke("validate").exit_code == 2


def test_show_prints_the_recipe_after_substitution(files: dict[str, str]) -> None:
    result = invoke(
        "show", files["valid.json"], "-s", "beamline=i03", "--set", "workingdir=/d=x"
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["1"]["queue"] == "runner.i03"
    assert shown["1"]["output"] == {"done": [2]}
    assert shown["start"] == [[1, {"dir": "/d=x"}]]
    assert shown["2"]["parameters"]["files"] is None
    assert result.output.startswith('{\n  "start"')


def test_show_without_parameters_keeps_fields(files: dict[str, str]) -> None:
    result = invoke("show", files["valid.json"])

    assert json.loads(result.output)["1"]["queue"] == "runner.{beamline}"


@pytest.mark.parametrize("assignment", ["novalue", "=value"])
def test_show_with_a_bad_assignment_is_a_usage_error(
    files: dict[str, str], assignment: str
) -> None:
    result = invoke("show", files["valid.json"], "-s", assignment)

    assert result.exit_code == 2
    assert "is not of the form key=value" in result.output


def test_graph_prints_dot(files: dict[str, str]) -> None:
    result = invoke("graph", files["valid.json"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("digraph recipe {")
    assert 'n1 -> n2 [label="done"];' in result.output


def test_graph_prints_mermaid(files: dict[str, str]) -> None:
    result = invoke("graph", "--mermaid", files["valid.json"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD\n")
    assert '  n1 -->|"done"| n2' in result.output


def test_graph_of_an_invalid_recipe_is_an_error(files: dict[str, str]) -> None:
    result = invoke("graph", files["invalid.json"])

    assert result.exit_code == 1
    assert isinstance(result.exception, RecipeError)
    assert "is invalid (2 problems, the first: node 1: output" in str(result.exception)


def test_the_zocalo_entry_point_prints_one_line_and_exits_1(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["recipe", "validate", files["invalid.json"], files["broken.json"]])

    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "zocalo: error: 2 of 2 recipe files are invalid\n"
    assert "Traceback" not in captured.err + captured.out
    assert "node 1: output links to node 7" in captured.out


def test_the_zocalo_entry_point_on_a_file_that_is_not_json(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["recipe", "show", files["broken.json"]])

    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("zocalo: error: recipe file ")
    assert "not valid JSON" in error
    assert len(error.splitlines()) == 1
