"""`harness run-all` wall time from scratch and again with nothing changed (every stage and eval reused)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from benchmarks.training import HARNESS


def timed_run_all(config: Path, run_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([HARNESS, "run-all", "--config", str(config), "--output", str(run_dir)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def first_and_second_run(config: Path, run_dir: Path) -> dict[str, float]:
    """The run directory must not exist yet, so the first run trains and evaluates everything."""
    first = timed_run_all(config, run_dir)
    second = timed_run_all(config, run_dir)
    return {"first_s": first, "second_s": second, "ratio": second / first}
