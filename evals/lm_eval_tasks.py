"""Standard lm-evaluation-harness tasks on a loaded checkpoint: a general-capability regression check.

`harness eval --lm-eval-tasks t1,t2` hands the model the suite already loaded (start weights plus
PEFT adapter, in eval mode) to `lm_eval.simple_evaluate` through its `HFLM` wrapper, so lm-eval scores
exactly the weights our evals score. Tasks come from lm-eval's registry or from `--lm-eval-include-path`
(e.g. the folder `harness export-lm-eval` writes); their data must be local, since runs are offline.

Results become metrics named `lm_eval/<task>/<metric>` (`.../<metric>/<filter>` for filters other
than `none`) in the checkpoint's results file, plus an `lm_eval` entry in its `evals`. lm-eval reports
a standard error, not per-item scores, so the CI is value +/- 1.96 x stderr, and the value itself
where lm-eval reports none (its perplexity metrics); there are no paired deltas for these metrics.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.run.results import EvalInfo, MetricValue

Z_95 = 1.959963984540054


def metric_name(task: str, key: str) -> str:
    """`lm_eval/<task>/<metric>` for lm-eval's `"<metric>,<filter>"` result key (filter `none` omitted)."""
    metric, _, filter_name = key.partition(",")
    return f"lm_eval/{task}/{metric}" + ("" if filter_name in ("", "none") else f"/{filter_name}")


def lm_eval_metrics(results: dict[str, Any]) -> dict[str, MetricValue]:
    """Typed metrics from the dict `lm_eval.simple_evaluate` returns (groups included, non-numbers skipped)."""
    metrics: dict[str, MetricValue] = {}
    for task, values in results["results"].items():
        directions = results.get("higher_is_better", {}).get(task, {})
        n = int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
        for key, value in values.items():
            metric, _, filter_name = key.partition(",")
            if metric.endswith("_stderr") or not filter_name or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            stderr = values.get(f"{metric}_stderr,{filter_name}")
            half_width = Z_95 * stderr if isinstance(stderr, (int, float)) else 0.0
            metrics[metric_name(task, key)] = MetricValue(
                value=float(value),
                ci_low=float(value) - half_width,
                ci_high=float(value) + half_width,
                n=n,
                higher_is_better=directions.get(metric),
            )
    return metrics


def lm_eval_hash_items(tasks: Sequence[str], include_path: Path | None) -> list[str]:
    """What the lm-eval part of a results file depends on besides the weights: task names and the included task files."""
    items = [f"lm_eval:{task}" for task in tasks]
    if tasks and include_path is not None:
        digest = hashlib.sha256()
        for file in sorted(p for p in Path(include_path).rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(include_path)).encode())
            digest.update(file.read_bytes())
        items.append(f"lm_eval_include:{digest.hexdigest()[:16]}")
    return items


def run_lm_eval_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    include_path: Path | None,
    max_length: int,
    batch_size: int,
    bf16_autocast: bool = False,
    limit: int | None = None,
) -> tuple[dict[str, MetricValue], EvalInfo]:
    """Run lm-eval `tasks` on an already-loaded model; metrics `lm_eval/<task>/<metric>` and what ran.

    `max_length` is lm-eval's context window: the perplexity eval's, so an exported held-out task
    reproduces `heldout_bits_per_byte`.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise HarnessError(f"--lm-eval-include-path {include_path}: not a directory; point it at a folder of lm-eval task YAML files")
    started = time.perf_counter()
    manager = TaskManager(include_path=str(include_path) if include_path is not None else None)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        raise HarnessError(
            f"--lm-eval-tasks: unknown lm-eval task(s) {', '.join(unknown)}; check the names (`lm_eval ls tasks`) "
            "or add --lm-eval-include-path with their YAML"
        )
    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        max_length=max_length,
        batch_size=batch_size,
        mixed_precision_dtype="bfloat16" if bf16_autocast else None,
    )
    results = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit, log_samples=False)
    metrics = lm_eval_metrics(results)
    info = EvalInfo(
        n_items=sum(int(n.get("effective", 0)) for n in results.get("n-samples", {}).values()),
        wall_time_s=time.perf_counter() - started,
        details={
            "tasks": list(tasks),
            "include_path": str(include_path) if include_path is not None else None,
            "lm_eval_version": results.get("lm_eval_version"),
            "task_versions": results.get("versions", {}),
            "n_shot": results.get("n-shot", {}),
            "max_length": max_length,
            "ci": "value +/- 1.96 x lm-eval's stderr; the value itself where lm-eval reports no stderr",
        },
    )
    return metrics, info
