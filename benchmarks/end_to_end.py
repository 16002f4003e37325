"""`harness run-all` wall time from scratch and again with nothing changed (every stage and eval reused)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from harness.run.layout import RunLayout

from benchmarks.training import HARNESS


def timed_run_all(config: Path, run_dir: Path, *options: str, env: dict[str, str] | None = None) -> float:
    """Seconds one `harness run-all` process takes; `env` adds to (or replaces in) this process's environment."""
    started = time.perf_counter()
    subprocess.run(
        [HARNESS, "run-all", "--config", str(config), "--output", str(run_dir), *options],
        check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - started


def stage_figures(run_dir: Path) -> list[dict[str, float | str]]:
    """Each trained arm's wall time, tokens/s and held-out loss before and after, from its manifest."""
    rows = []
    layout = RunLayout(run_dir)
    for arm in json.loads(layout.run_json.read_text(encoding="utf-8"))["stage_wall_times"]:
        manifest = json.loads(layout.manifest(arm).read_text(encoding="utf-8"))
        losses = manifest["eval_loss"]
        rows.append({
            "arm": arm,
            "wall_time_s": manifest["wall_time_s"],
            "tokens_per_s": manifest["tokens_per_s"],
            "heldout_loss_start": losses[0]["loss"],
            "heldout_loss_end": losses[-1]["loss"],
        })
    return rows


def first_and_second_run(config: Path, run_dir: Path) -> dict[str, object]:
    """The run directory must not exist yet, so the first run trains and evaluates everything."""
    first = timed_run_all(config, run_dir)
    stages = stage_figures(run_dir)
    second = timed_run_all(config, run_dir)
    return {"first_s": first, "second_s": second, "ratio": second / first, "stages": stages}
