"""What every tracker receives from a saved run, as plain data: built once, then sent to MLflow, W&B or TensorBoard.

Metric keys are the same in every tracker: `<metric>` with `<metric>_ci_low`, `<metric>_ci_high` and,
for generated replies, `<metric>_capped_share`; each paired delta as `delta_vs_<reference>/<metric>`
with `_ci_low`, `_ci_high` and `_p_value`. No key is a folder of another (MLflow's file store keeps
each metric as a file named by its key).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.reports import FORMATS
from harness.reports.load import RunView
from harness.run.config import config_hash
from harness.run.layout import RunLayout
from harness.run.results import EvalResult
from harness.reports.provenance import flatten


def published_files(run_dir: Path) -> list[Path]:
    """Run files a tracker keeps beside the numbers, whichever of them the run has."""
    layout = RunLayout(run_dir)
    return [path for path in (*(layout.report(name) for name in FORMATS), layout.config, layout.grid_json) if path.is_file()]


@dataclass(frozen=True)
class TrackedCheckpoint:
    """One tracker run: one checkpoint's numbers and what identifies it."""

    name: str
    metrics: dict[str, float]
    params: dict[str, str]
    """Its arm, parent, base model, fingerprint and item cap, and per eval the items and the scorer version."""


@dataclass(frozen=True)
class TrackedRun:
    """One harness run: the group its checkpoints' tracker runs belong to."""

    name: str
    run_dir: Path
    config: dict[str, Any]
    checkpoints: list[TrackedCheckpoint]
    files: list[Path]
    digest: str
    """Hash of the config (where it is published aside) and every checkpoint's numbers and facts."""

    @property
    def params(self) -> dict[str, str]:
        """The config flattened to `section.key -> value`, as trackers without nesting take it, values exact."""
        return dict(flatten(self.config, scalar=exact_text))


def exact_text(value: Any) -> str:
    """A config value as text that loses nothing: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def tracker_key(name: str) -> str:
    """A checkpoint name as part of a metric key: characters MLflow refuses in keys become `_`."""
    return re.sub(r"[^\w\-. :]", "_", name)


def checkpoint_metrics(result: EvalResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, value in result.metrics.items():
        metrics.update({name: value.value, f"{name}_ci_low": value.ci_low, f"{name}_ci_high": value.ci_high})
        if value.capped_share is not None:
            metrics[f"{name}_capped_share"] = value.capped_share
    for name, by_reference in result.deltas.items():
        for reference, delta in by_reference.items():
            key = f"delta_vs_{tracker_key(reference)}/{name}"
            metrics.update({key: delta.delta, f"{key}_ci_low": delta.ci_low, f"{key}_ci_high": delta.ci_high,
                            f"{key}_p_value": delta.p_value})
    return metrics


def checkpoint_params(result: EvalResult) -> dict[str, str]:
    summary = result.checkpoint
    params = {"arm": summary.arm, "parent": summary.parent or "", "base_model": summary.base_model,
              "fingerprint": summary.fingerprint, "limit": "" if result.limit is None else str(result.limit)}
    for eval_name, info in result.evals.items():
        params[f"eval.{eval_name}.items"] = str(info.n_items)
        params[f"eval.{eval_name}.scorer_version"] = str(info.scorer_version or 1)
    return params


def tracked_run(view: RunView) -> TrackedRun:
    checkpoints = [
        TrackedCheckpoint(name, checkpoint_metrics(result), checkpoint_params(result)) for name, result in view.results.items()
    ]
    name = str(view.config.get("name") or view.run_dir.name)
    settings = {key: value for key, value in view.config.items() if key != "tracking"}
    digest = config_hash({"name": name, "config": settings, "checkpoints": [(c.name, c.metrics, c.params) for c in checkpoints]})
    files = published_files(view.run_dir)
    return TrackedRun(name, view.run_dir, view.config, checkpoints, files, digest)
