"""One checkpoint's eval phase of the default `run-all` (perplexity, counseling replies, safety), as it was and as it is.

As it was: `model.generate` with its own cache at batch 16, each eval's prompts on their own, weights left
in the checkpoint's memory map. As it is: the in-place decoder at `batch_size: auto` over every generation
eval's prompts at once (each with its eval's budget), resident weights. Each evaluation starts from an
empty run directory (no cached replies) and loads its model as `run-all` does; the two run in turns, the
order alternating, so that drift in the machine's speed hits both. The base checkpoint stands for every
arm: each arm evaluates the same items, an adapter adds a little to every forward pass.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock


def _as_it_was() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch("harness.evals.greedy_decoding.attends_to_full_context", return_value=False))
    stack.enter_context(mock.patch("harness.models.loading._copy_out_of_checkpoint_mapping", lambda model: None))
    stack.enter_context(mock.patch("harness.evals.runner.generate_together", lambda context, specs: None))
    return stack


def timed_evaluation(config_path: Path, *, as_it_was: bool) -> tuple[float, dict[str, Any]]:
    """Seconds for the base checkpoint's whole eval suite in a fresh run directory, and its metric values."""
    from harness.data.run_data import load_run_data
    from harness.evals.runner import evaluate_checkpoint
    from harness.models.checkpoints import resolve_checkpoint
    from harness.run.config import load_config

    config = load_config(config_path, ["eval.generation.batch_size=16"] if as_it_was else [])
    data = load_run_data(config)
    with tempfile.TemporaryDirectory(prefix="harness-eval-phase-") as scratch, _as_it_was() if as_it_was else contextlib.nullcontext():
        run_dir = Path(scratch)
        started = time.perf_counter()
        result = evaluate_checkpoint(config, resolve_checkpoint("base", config, run_dir), data, run_dir, reuse=False)
        seconds = time.perf_counter() - started
    return seconds, {name: value.model_dump(mode="json") for name, value in result.metrics.items()}


def compare_eval_phase(config_path: Path, repeats: int, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    from harness.models.cpu_kernels import compiled_kernels
    from harness.models.linear_kernel import linear_gemm

    kernels_built = compiled_kernels() is not None  # built before the timed runs: a machine's first decode pays it once
    runs: dict[bool, list[float]] = {True: [], False: []}
    metrics: dict[bool, dict[str, Any]] = {}
    for repeat in range(repeats):
        for as_it_was in (True, False) if repeat % 2 == 0 else (False, True):
            seconds, metrics[as_it_was] = timed_evaluation(config_path, as_it_was=as_it_was)
            runs[as_it_was].append(seconds)
            log(f"eval phase {'as it was' if as_it_was else 'as it is'}: {seconds:.1f} s")
    return {
        "repeats": repeats,
        "before_s": runs[True],
        "after_s": runs[False],
        "paired_speedups": [before / after for before, after in zip(runs[True], runs[False], strict=True)],
        "median_speedup": statistics.median(before / after for before, after in zip(runs[True], runs[False], strict=True)),
        "identical_metrics": metrics[True] == metrics[False],
        "compiled_cpu_kernels": kernels_built,
        "linear_gemm": linear_gemm(),
    }
