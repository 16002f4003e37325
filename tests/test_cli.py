"""The command line: help with examples, and one-line errors with non-zero exits for user mistakes."""

import os
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


@pytest.mark.parametrize(
    "args, needles",
    [
        (["eval", "--config", "configs/tiny.yaml"], ["harness eval", "--checkpoint"]),
        (["eval", "--checkpoint", "base", "--limit", "0"], ["harness eval", "--limit"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, needles):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


@pytest.mark.parametrize(
    "override, needles",
    [
        ("name=[unclosed", ["--set 'name=[unclosed'", "not valid YAML"]),
        ("seed=-1", ["`seed`", "greater than or equal to 0"]),
        ("training.domain.learning_rate=.inf", ["`training.domain.learning_rate`", "finite"]),
        ("arms=[instruct]", ["arms[0] (instruct)", "parent 'domain'"]),
    ],
)
def test_bad_overrides_are_one_line_errors_naming_the_key(override, needles):
    result = run_cli("data", "inspect", "--config", "configs/tiny.yaml", "--set", override)
    assert_one_line_error(result, *needles)
    assert "{'" not in result.stderr, "the error must name the key, not print the whole config"


def test_a_config_file_that_is_not_utf8_is_a_one_line_error(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_one_line_error(run_cli("data", "inspect", "--config", str(config)), str(config), "UTF-8")


def _lock_error_as_unprivileged(run_dir: Path) -> str:
    """The error `run_lock` gives on `run_dir` in a forked child that cannot write there: root writes
    anywhere, so as root the child first becomes user nobody."""
    from harness.core.errors import HarnessError
    from harness.pipeline import run_lock

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        message = "no error"
        try:
            if os.geteuid() == 0:
                os.setuid(65534)
            with run_lock(run_dir):
                pass
        except HarnessError as exc:
            message = str(exc)
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    os.waitpid(child, 0)
    return message


def test_an_unwritable_run_directory_is_a_one_line_error(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    message = _lock_error_as_unprivileged(folder / "run")
    assert message.startswith(f"{folder / 'run'}: cannot be used as a run directory (Permission denied)"), message
    assert "\n" not in message


@pytest.mark.parametrize("where", ["a file", "/proc"])
def test_an_output_that_cannot_hold_a_run_is_a_one_line_error(tmp_path, where):
    output = tmp_path / "taken" if where == "a file" else Path("/proc/harness-run")
    if where == "a file":
        output.write_text("not a folder")
    result = run_cli("run-all", "--config", "configs/tiny.yaml", "--output", str(output))
    assert_one_line_error(result, str(output), "cannot be used as a run directory")


def test_a_misspelled_eval_fails_before_any_training(tmp_path):
    result = run_cli("run-all", "--config", "configs/tiny.yaml", "--output", str(tmp_path / "run"), "--set", "eval.suite=[perplexity, bogus]")
    assert_one_line_error(result, "eval.suite", "'bogus'", "perplexity, safety, similarity")
    assert not (tmp_path / "run").exists()
