"""YAML errors name the place and the problem, never a piece of the document."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from zocalo_core import ConfigurationError, load


@pytest.mark.parametrize(
    "value",
    ["*S3cr3tPw", "!hunter2 x", "'S3cr3tPw", "[S3cr3tPw", "S3cr3tPw: [oops"],
)
def test_a_yaml_error_does_not_repeat_what_the_file_says(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "site.yml"
    path.write_text(f"version: 1\nrmq:\n  plugin: pika\n  password: {value}\n")

    with pytest.raises(ConfigurationError) as raised:
        load(path)

    message = str(raised.value)
    assert "not valid YAML" in message
    assert str(path) in message
    # Nor does the traceback `zocalo --debug` prints: PyYAML's error is not chained.
    shown = "".join(traceback.format_exception(raised.value))
    for secret in ("S3cr3tPw", "hunter2"):
        assert secret not in message
        assert secret not in shown


def test_bytes_that_are_not_utf8_are_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    path.write_bytes(b"version: 1\nx: \xff\n")

    with pytest.raises(ConfigurationError, match=r"not valid YAML: invalid start byte"):
        load(path)
