"""The command line: help with examples, and one-line errors with non-zero exits for user mistakes."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("command", [["run-all"], ["train"], ["eval"], ["report"], ["data", "inspect"]])
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example:" in result.output


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import app; app()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error:"), result.stderr
    message = " ".join(lines[lines.index(next(l for l in lines if l.startswith("error:"))):])
    for needle in needles:
        assert needle in message, message


def test_missing_config_file():
    assert_one_line_error(run_cli("data", "inspect", "--config", "configs/nope.yaml"), "configs/nope.yaml", "not found")


def test_unknown_model_alias():
    result = run_cli("data", "inspect", "--config", "configs/tiny.yaml", "--set", "model.name=smollm9-unknown")
    assert_one_line_error(result, "smollm9-unknown", "model.name")


def test_unknown_stage():
    assert_one_line_error(run_cli("train", "decode", "--config", "configs/tiny.yaml"), "decode", "domain")


def test_report_on_a_directory_without_results(tmp_path):
    assert_one_line_error(run_cli("report", str(tmp_path)), str(tmp_path))


def test_unknown_checkpoint_lists_what_was_looked_for(tmp_path):
    result = run_cli("eval", "--checkpoint", str(tmp_path / "missing"), "--config", "configs/tiny.yaml", "--output", str(tmp_path))
    assert_one_line_error(result, "not found", "adapter_config.json", "hub id")


def test_debug_shows_the_traceback():
    result = run_cli("data", "inspect", "--config", "configs/nope.yaml", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr
