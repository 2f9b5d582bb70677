"""The main job on the memory transport: watch, run on each file, collect the lines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from zocalo_core import start_recipe
from zocalo_services_contrib._filewatcher import FileWatcher
from zocalo_services_contrib._jsonlines import JSONLines
from zocalo_services_contrib._runner import Runner


def example_recipe(workingdir: Path, results: Path, recipe_id: str) -> dict[str, Any]:
    return {
        "1": {
            "service": "FileWatcher",
            "queue": "filewatcher",
            "parameters": {
                "directory": str(workingdir),
                "pattern": "*.txt",
                "interval": 0.05,
                "timeout": 10,
            },
            "output": {"every": 2, "timeout": 3},
        },
        "2": {
            "service": "Runner",
            "queue": "runner",
            "parameters": {
                "command": ["sha256sum", "{file}"],
                "workdir": str(workingdir),
            },
            "output": {"success": 3, "failure": 3},
        },
        "3": {
            "service": "JSONLines",
            "queue": "jsonlines",
            "parameters": {
                "output_file": f"{results}/{recipe_id}.jsonl",
                "include": ["file", "exit_code", "stdout"],
            },
        },
        "start": [[1, {}]],
    }


def test_each_input_is_hashed_into_a_file_named_after_the_recipe(
    run_service: Any,
    tools: Any,
    make_site: Any,
    tmp_path: Path,
    memory_broker: Any,
) -> None:
    workingdir = tmp_path / "data"
    results = tmp_path / "results"
    workingdir.mkdir()
    contents = {f"input{number}.txt": f"content {number}\n" for number in range(3)}
    for name, text in contents.items():
        (workingdir / name).write_text(text)
    site = make_site(
        {
            "programs": ["sha256sum"],
            "working_roots": [str(workingdir)],
            "output_roots": [str(results)],
            "lease_interval": 0.2,
            "heartbeat_interval": 0.05,
            "stale_after": 1.0,
        }
    )
    for service in (FileWatcher, Runner, JSONLines):
        run_service(service, site)

    outcomes = {}
    for recipe_id in ("run-1", "run-2"):
        recipe = example_recipe(workingdir, results, recipe_id)
        start_recipe(tools.observer, recipe, environment={"ID": recipe_id})
        path = results / f"{recipe_id}.jsonl"
        assert tools.wait_until(
            lambda path=path: path.exists() and len(path.read_text().splitlines()) == 3
        )
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        outcomes[recipe_id] = sorted(lines, key=lambda line: line["file"])

    assert memory_broker.wait_idle(tools.WAIT)
    expected = [
        {
            "file": str(workingdir / name),
            "exit_code": 0,
            "stdout": f"{hashlib.sha256(text.encode()).hexdigest()}  "
            f"{workingdir / name}\n",
        }
        for name, text in sorted(contents.items())
    ]
    assert outcomes["run-1"] == outcomes["run-2"] == expected
    assert sorted(path.name for path in workingdir.iterdir()) == sorted(contents)
