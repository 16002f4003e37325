"""`run-all --executor ray` on a real local Ray instance with 2 CPUs: the local executor's results, a worker
killed mid-training, two nodes finishing together, and a node failing on a bad setting.

The grid has two points that share their domain node. Each training task asks for 0.75 CPU and each
eval for 0.25, so the two evals that can be ready before the instruct nodes never hold back a training
task: both instruct nodes start when their parent's merge is done and train side by side (measured:
21.0 and 21.8 s of training, 19.8 s of it together, finished 2 s apart; under heavy load 120 and
118 s, 111 s together). The slow tests run the grid three times under Ray and once in process:
`pytest -m slow tests/test_ray_executor.py` (as three parallel sessions, `-k` on the equality, kill
and failure tests: 6 minutes at load average 3 to 5 on 2 cores, 33 at 7 to 14; see README).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.run.config import load_config
from harness.run.grid_results import GridResult
from harness.run.manifest import TRAINING_RTOL, Manifest
from tests.run_files import assert_nothing_complete_is_corrupt, assert_same_results, complete, temporaries

REPO = Path(__file__).resolve().parents[1]
GRID = ("--set", "arms=[domain, instruct]", "--set", "grid={training.instruct.learning_rate: [0.001, 0.002]}",
        "--set", "eval.suite=[perplexity, similarity]")
RAY = ("--executor", "ray", "--set", "execution.resources={domain: {num_cpus: 0.75}, instruct: {num_cpus: 0.75}, eval: {num_cpus: 0.25}}")
NODES = ("domain.p0", "instruct.p0", "instruct.p1")
NAMES = ("base", *NODES)
RUN_TIMEOUT_S = 1800


def _command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run-all", "--config", "configs/tiny.yaml", "--output", str(run_dir), *GRID, *extra]


def _env(scratch: Path) -> dict[str, str]:
    scratch.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}


def _run(run_dir: Path, scratch: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(run_dir, *extra), cwd=REPO, env=_env(scratch), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def _succeeded(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return " ".join(done.stderr.split())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, embedded_model_dir) -> Path:
    root = tmp_path_factory.mktemp("local")
    _succeeded(_run(root / "run", root / "scratch"))
    return root / "run"


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, embedded_model_dir) -> Path:
    root = tmp_path_factory.mktemp("ray")
    _succeeded(_run(root / "run", root / "scratch", *RAY))
    return root / "run"


def test_execution_settings_are_checked_and_change_no_results_hash():
    plain = load_config(REPO / "configs" / "tiny.yaml")
    on_ray = load_config(REPO / "configs" / "tiny.yaml", ["execution.executor=ray", "execution.resources.instruct.num_gpus=0.5"])
    assert on_ray.execution.resources.instruct.num_gpus == 0.5 and on_ray.execution.resources.domain.num_gpus == 0
    assert on_ray.fingerprint() == plain.fingerprint(), "where a run executes is no setting of its results"
    with pytest.raises(HarnessError, match=r"key `execution.resources.eval.num_cpus`: Input should be greater than 0"):
        load_config(REPO / "configs" / "tiny.yaml", ["execution.resources.eval.num_cpus=0"])
    with pytest.raises(HarnessError, match=r"key `execution.executor`"):
        load_config(REPO / "configs" / "tiny.yaml", ["execution.executor=slurm"])


def _one_line_error(tmp_path: Path, python: str, *options: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", python, "run-all", "--config", "configs/tiny.yaml", "--output", str(tmp_path / "run"), *options],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1 and not (tmp_path / "run").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def test_a_ray_address_without_the_ray_executor_is_one_line(tmp_path):
    line = _one_line_error(tmp_path, "from harness.cli import app; app()", "--ray-address", "auto")
    assert line == "error: --ray-address (execution.ray_address) names a Ray cluster; add `--executor ray` to run there"


def test_without_ray_the_ray_executor_is_one_line_naming_the_install(tmp_path):
    blocked = "import sys; sys.modules['ray'] = None; from harness.cli import app; app()"
    line = _one_line_error(tmp_path, blocked, "--executor", "ray")
    assert line == "error: execution.executor ray needs the ray package; install it with `pip install 'harness[ray]'`"


@pytest.mark.slow
def test_ray_gives_the_local_executors_metrics_and_replies(local_run, ray_run):
    assert_same_results(ray_run, local_run, NAMES, NODES)
    mine, theirs = GridResult.load(ray_run / "grid.json"), GridResult.load(local_run / "grid.json")
    assert [(c.arm, c.reference, c.point, c.metric) for c in mine.cells] == [(c.arm, c.reference, c.point, c.metric) for c in theirs.cells]
    assert [c.delta.value for c in mine.cells] == pytest.approx([c.delta.value for c in theirs.cells], rel=TRAINING_RTOL)
    assert json.loads((ray_run / "run.json").read_text())["executor"] == "ray"
    assert (ray_run / "report.md").is_file() and (ray_run / "report.html").is_file()


def _training_interval(run_dir: Path, node: str) -> tuple[float, float]:
    manifest = Manifest.load(run_dir / "checkpoints" / node)
    finished = dt.datetime.fromisoformat(manifest.created).timestamp()
    return finished - manifest.wall_time_s, finished


@pytest.mark.slow
def test_two_nodes_trained_at_the_same_time_leave_every_run_file_intact(ray_run):
    (start_a, end_a), (start_b, end_b) = (_training_interval(ray_run, node) for node in ("instruct.p0", "instruct.p1"))
    overlap = min(end_a, end_b) - max(start_a, start_b)
    assert overlap > 0.5 * min(end_a - start_a, end_b - start_b), "the two instruct nodes did not train side by side"
    assert temporaries(ray_run) == []
    assert_nothing_complete_is_corrupt(ray_run)
    assert sorted(p.parent.name for p in complete(ray_run, "checkpoints/*/manifest.json")) == sorted(NAMES)
    for node in NODES:
        assert Manifest.load(ray_run / "checkpoints" / node).arm == node
    assert sorted(p.stem for p in complete(ray_run, "results/*.json")) == sorted(NAMES)


def _descendants(root: int) -> list[int]:
    """Every process below `root` (the run's Ray instance and workers are children of its driver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _worker_running(driver: int, task: str) -> int | None:
    """The pid of the Ray worker running `task` for this driver (Ray titles it `ray::TASK`), if any."""
    for pid in _descendants(driver):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().strip()
        except OSError:
            continue
        if title == f"ray::{task}":
            return pid
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_training_is_retried_to_a_complete_checkpoint_and_the_same_results(local_run, tmp_path):
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    process = subprocess.Popen(_command(run_dir, *RAY), cwd=REPO, env=_env(scratch),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, killed = time.monotonic(), None
    try:
        while killed is None:
            assert process.poll() is None, "run-all ended before instruct.p0 trained"
            assert time.monotonic() - started < RUN_TIMEOUT_S, "instruct.p0 never started training"
            partial = list((run_dir / "checkpoints").glob(".instruct.p0.*.partial"))
            worker = _worker_running(process.pid, "train instruct.p0")
            if partial and worker is not None and any(scratch.glob("harness-trainer-*")):
                os.kill(worker, signal.SIGKILL)
                killed = time.time()
            time.sleep(0.05)
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        process.kill()
    assert process.returncode == 0, out[-3000:] + err[-3000:]
    assert not any(p.exists() for p in partial), "the killed attempt's temporary directory was not cleared"
    manifest = Manifest.load(run_dir / "checkpoints" / "instruct.p0")
    assert dt.datetime.fromisoformat(manifest.created).timestamp() > killed - 1, "the checkpoint is not the retry's"
    assert temporaries(run_dir) == []
    assert_nothing_complete_is_corrupt(run_dir)
    assert_same_results(run_dir, local_run, NAMES, NODES)


@pytest.mark.slow
def test_a_node_failing_on_a_bad_setting_fails_the_run_naming_it_and_keeps_independent_nodes(tmp_path):
    run_dir = tmp_path / "run"
    done = _run(run_dir, tmp_path / "scratch", *RAY, "--set", "grid={training.instruct.batch_size: [2, 100]}",
                "--set", "eval.suite=[perplexity]")
    assert done.returncode == 1
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"train instruct\.p1 failed: instruct stage: \d+ training conversation\(s\) but training\.instruct\.batch_size is 100", error[0])
    assert "2 trained node(s) that do not depend on it are complete and kept" in error[0]
    assert sorted(p.parent.name for p in complete(run_dir, "checkpoints/*/manifest.json")) == ["base", "domain.p0", "instruct.p0"]
    assert sorted(p.stem for p in complete(run_dir, "results/*.json")) == ["base", "domain.p0", "instruct.p0"]
    assert not (run_dir / "run.json").exists()
    assert temporaries(run_dir) == []
