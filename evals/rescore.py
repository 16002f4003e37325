"""Score a checkpoint's saved replies again with the current scorers, loading no model under test.

lm-evaluation-harness users have long asked for this (its issue #1627): after a scorer changes (a new
refusal detector, a fixed metric) the replies are still right, only their scores are not. Every eval
whose spec can `rescore` scores its per-sample log again; every eval's metrics and intervals are then
recomputed from the log, as the eval itself computes them. An eval that needs the model to score
(perplexity's token losses) keeps its saved item values: its numbers stand unless its scorer version
moved, and then it has to be run again, which `StaleEval` says in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.evals.metrics import eval_metrics
from harness.evals.registry import get_eval, registered_evals
from harness.evals.runner import load_result
from harness.run.config import HarnessConfig
from harness.run.layout import RunLayout
from harness.run.results import EvalResult, read_samples, write_samples


@dataclass(frozen=True)
class StaleEval:
    """An eval whose saved items an older scorer produced and which cannot be scored from the log."""

    checkpoint: str
    eval: str
    saved_version: int
    current_version: int

    def __str__(self) -> str:
        return (
            f"{self.checkpoint}: {self.eval} was scored by scorer version {self.saved_version} and the current one "
            f"({self.current_version}) needs the model; re-run `harness eval --checkpoint {self.checkpoint} --suite {self.eval}`"
        )


def saved_scorer_version(result: EvalResult, eval_name: str) -> int:
    """The scorer version that scored `eval_name` in `result` (1 for results saved before versions were)."""
    return result.evals[eval_name].scorer_version or 1


def rescore_result(run_dir: Path, name: str, config: HarnessConfig) -> tuple[EvalResult, list[StaleEval]]:
    """Score checkpoint `name`'s saved items again and save its results; return them and the evals that must be re-run.

    Deltas between checkpoints are not touched here: they pair two checkpoints' logs, so the caller
    recomputes them once every checkpoint is scored (`harness.evals.runner.add_deltas`).
    """
    layout = RunLayout(run_dir)
    result = load_result(run_dir, name)
    if result is None:
        raise HarnessError(f"{layout.result(name)}: not found; evaluate the checkpoint with `harness eval --checkpoint {name}`")
    stale = []
    for eval_name in sorted(result.evals.keys() & set(registered_evals())):
        spec, info = get_eval(eval_name), result.evals[eval_name]
        log = layout.samples(name, eval_name)
        records = read_samples(log)
        if spec.rescore is not None:
            output = spec.rescore(records, config.eval)
            records = output.records
            write_samples(log, records)
            info.details = {**info.details, **output.details}
            info.scorer_version = spec.scorer_version
        elif saved_scorer_version(result, eval_name) != spec.scorer_version:
            stale.append(StaleEval(name, eval_name, saved_scorer_version(result, eval_name), spec.scorer_version))
            continue
        for metric in spec.metrics:
            result.metrics.pop(metric.name, None)
        result.metrics.update(eval_metrics(spec, records, resamples=config.eval.bootstrap_resamples, seed=config.seed))
        result.presentation.update(spec.presentations(result.metrics))
    result.save(layout.result(name))
    return result, stale
