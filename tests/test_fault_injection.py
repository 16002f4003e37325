"""SIGKILL `harness run-all` at fixed points, re-run it, and compare with an uninterrupted run (`-m slow`).

Each kill point is an observable marker in the run directory (or in the child's private TMPDIR, where
the trainer keeps its scratch folder), so no test-only code path exists in the product. After the kill:
nothing that looks complete is corrupt. After the re-run: what was complete at the kill is reused (its
skip line is printed and its files are untouched), no temporary is left, and every result equals the
reference run's: greedy replies and generation-based metrics exactly, training-based numbers within
`harness.run.manifest.TRAINING_RTOL` (see `run_files.training_based`). The `data-prep` case re-runs everything from
scratch in a second process, so it also proves that the same config and seed give the same results.

Run: `pytest -m slow tests/test_fault_injection.py` (about 10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.run.manifest import TRAINING_RTOL, Manifest
from tests.run_files import (
    TRAINING_BASED_METRICS, assert_equal, assert_nothing_complete_is_corrupt, assert_same_results, complete, temporaries,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NAMES = ("base", "domain", "instruct-only", "instruct")
TRAINED = ("domain", "instruct-only", "instruct")
RUN_TIMEOUT_S = 900


def _hidden(run_dir: Path, pattern: str) -> bool:
    return any(run_dir.glob(pattern))


def _training(run_dir: Path, scratch: Path, arm: str) -> bool:
    """The arm's temporary checkpoint exists and the trainer has made its scratch folder: mid-training."""
    return _hidden(run_dir, f"checkpoints/.{arm}.*.partial") and _hidden(scratch, "harness-trainer-*")


Marker = Callable[[Path, Path], bool]
KILL_POINTS: dict[str, Marker] = {
    # the lock is taken first; the tokenizer and the data are being loaded and split. Nothing is written
    # yet, so the re-run recomputes everything in a new process: this case is also the same-seed-twice check.
    "data-prep": lambda run, scratch: (run / ".lock").exists(),
    "domain-training": lambda run, scratch: _training(run, scratch, "domain"),
    # `instruct` trains on the merged domain model, after `instruct-only` is complete
    "instruct-training": lambda run, scratch: _training(run, scratch, "instruct"),
    # base and domain similarity replies are cached, domain's safety replies are being generated
    "mid-eval": lambda run, scratch: (run / "samples" / "domain" / "similarity.jsonl").exists(),
    # every checkpoint's results exist; deltas, run.json and the report are being written
    "writing-results": lambda run, scratch: (run / "results" / "instruct.json").exists(),
}


def _command(run_dir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import app; app()", "run-all", "--config", "configs/tiny.yaml", "--output", str(run_dir), *extra]


def _env(scratch: Path) -> dict[str, str]:
    scratch.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}


def _run_to_completion(run_dir: Path, scratch: Path, extra: tuple[str, ...] = ()) -> str:
    """Run `run-all` to the end; return its stderr (where the progress and skip lines go) with whitespace collapsed."""
    done = subprocess.run(_command(run_dir, extra), cwd=REPO, env=_env(scratch), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return " ".join(done.stderr.split())


def _run_and_kill(run_dir: Path, scratch: Path, marker: Marker, extra: tuple[str, ...] = ()) -> float:
    """Start `run-all`, SIGKILL it the moment `marker` holds; return the seconds it ran."""
    started = time.monotonic()
    with open(scratch.parent / "killed.stderr", "w") as log:
        process = subprocess.Popen(_command(run_dir, extra), cwd=REPO, env=_env(scratch), stdout=subprocess.DEVNULL, stderr=log)
        try:
            while not marker(run_dir, scratch):
                assert process.poll() is None, f"run-all ended (rc {process.returncode}) before the kill point was reached"
                assert time.monotonic() - started < RUN_TIMEOUT_S, "the kill point was never reached"
                time.sleep(0.005)
        finally:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == -9, (scratch.parent / "killed.stderr").read_text()[-3000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, embedded_model_dir) -> Path:
    """One uninterrupted run of the tiny config, shared by every case."""
    root = tmp_path_factory.mktemp("reference")
    _run_to_completion(root / "run", root / "scratch")
    return root / "run"


def test_reference_run_records_how_reproducible_it_is(reference_run):
    summary = json.loads((reference_run / "run.json").read_text())
    assert summary["determinism"]["seed"] == 0
    assert summary["determinism"]["torch_threads"] == 1
    assert summary["determinism"]["deterministic_algorithms"] in (True, False)
    assert f"relative {TRAINING_RTOL:g}" in summary["determinism"]["promise"]
    for name in NAMES:
        record = Manifest.load(reference_run / "checkpoints" / name).determinism
        assert record is not None and record.model_dump() == summary["determinism"], name


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_sigkilled_run_resumes_to_the_reference_results(reference_run, tmp_path, kill_point):
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    _run_and_kill(run_dir, scratch, KILL_POINTS[kill_point])
    assert_nothing_complete_is_corrupt(run_dir)
    complete_arms = {p.parent.name for p in complete(run_dir, "checkpoints/*/manifest.json")} - {"base"}
    evaluated = {p.stem for p in complete(run_dir, "results/*.json")}
    untouched = {
        p: p.stat().st_mtime_ns
        for p in [*complete(run_dir, "checkpoints/*/adapter_model.safetensors"), *complete(run_dir, "merged/*/model.safetensors")]
    }

    log = _run_to_completion(run_dir, scratch)

    assert {arm for arm in TRAINED if f"{arm}: checkpoint is up to date, skipping" in log} == complete_arms
    assert {name for name in NAMES if f"{name}: results are up to date, skipping" in log} == evaluated
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched, "a finished stage was retrained"
    assert temporaries(run_dir) == []
    assert_nothing_complete_is_corrupt(run_dir)
    assert_same_results(run_dir, reference_run, NAMES, TRAINED)


GRID = ("--set", "arms=[domain, instruct]", "--set", "grid={training.instruct.learning_rate: [0.001, 0.002]}",
        "--set", "seeds=[0, 1]", "--set", "eval.suite=[perplexity, similarity]")
GRID_NODES = ("domain.p0.s0", "domain.p0.s1", "instruct.p0.s0", "instruct.p0.s1", "instruct.p1.s0", "instruct.p1.s1")


def test_a_grid_killed_mid_training_resumes_to_the_uninterrupted_grid_results(tmp_path, embedded_model_dir):
    from harness.run.grid_results import GridResult

    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    _run_to_completion(reference, tmp_path / "scratch-reference", GRID)
    _run_and_kill(run_dir, tmp_path / "scratch", lambda run, scratch: _training(run, scratch, "instruct.p1.s0"), GRID)
    assert_nothing_complete_is_corrupt(run_dir)
    complete = {p.parent.name for p in complete(run_dir, "checkpoints/*/manifest.json")} - {"base"}
    assert "domain.p0.s0" in complete and "instruct.p1.s0" not in complete

    log = _run_to_completion(run_dir, tmp_path / "scratch", GRID)

    assert {node for node in GRID_NODES if f"{node}: checkpoint is up to date, skipping" in log} == complete
    assert temporaries(run_dir) == []
    mine, theirs = GridResult.load(run_dir / "grid.json"), GridResult.load(reference / "grid.json")
    assert [(c.arm, c.reference, c.point, c.metric) for c in mine.cells] == [(c.arm, c.reference, c.point, c.metric) for c in theirs.cells]
    for got, want in zip(mine.cells, theirs.cells):
        training = got.metric in TRAINING_BASED_METRICS
        for field in ("value", "ci_low", "ci_high"):
            assert_equal(getattr(got.delta, field), getattr(want.delta, field), training, f"{got.arm}-{got.reference} {got.point} {got.metric} {field}")
