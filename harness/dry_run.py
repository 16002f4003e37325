"""`harness run-all --dry-run`: the expanded plan, what it shares and what it would cost, with nothing written.

Training cost is estimated from the stage's token count (read from the data with the tokenizer,
times epochs, capped by `max_steps`) and the tokens/s that earlier runs of the same model and stage
measured (their manifests under `output_dir`); without such a run, from this machine's matmul rate,
measured on the spot, at the share of it the stages reached in the recorded benchmark
(`harness.models.throughput`), and the table says which source each estimate came from. Eval cost is
the median wall time of earlier evaluations under `output_dir` that ran as each planned one would (same
model, evals, item limit and reply budgets); evaluations with no such precedent are counted, not guessed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.core.console import console, shown
from harness.run.config import HarnessConfig
from harness.core.errors import HarnessError
from harness.run.layout import MANIFEST_FILE, RunLayout
from harness.run.lineage import BASE
from harness.run.manifest import Manifest
from harness.run.results import JOINT_GENERATION, EvalResult


def measured_tokens_per_s(config: HarnessConfig, stage: str) -> float | None:
    """Median tokens/s of earlier trainings of this model and stage found under `output_dir`."""
    speeds = []
    runs = [RunLayout(run_dir) for run_dir in Path(config.output_dir).glob("*")]
    for path in (path for run in runs for path in run.checkpoints_dir.glob(f"*/{MANIFEST_FILE}")):
        try:
            manifest = Manifest.load(path.parent)
        except (ValueError, HarnessError):
            continue
        if manifest.stage == stage and manifest.base_model == config.model.name and manifest.tokens_per_s > 0:
            speeds.append(manifest.tokens_per_s)
    return statistics.median(speeds) if speeds else None


def saved_results(output_dir: Path) -> list[EvalResult]:
    """Every readable results file of the runs under `output_dir`."""
    results = []
    for path in (path for run_dir in Path(output_dir).glob("*") for path in RunLayout(run_dir).results_dir.glob("*.json")):
        try:
            results.append(EvalResult.load(path))
        except (OSError, ValueError, HarnessError):
            continue
    return results


def earlier_eval_seconds(config: HarnessConfig, saved: list[EvalResult]) -> list[float]:
    """Wall times of the `saved` evaluations that ran as one with `config` would: the same model, evals and
    item limit, and for every eval that records its reply budget, the budget `config` gives it."""
    suite, budget_for = set(config.eval.suite), config.eval.generation.budget_for
    seconds = []
    for result in saved:
        ran = {name: info for name, info in result.evals.items() if name != JOINT_GENERATION}
        same_budgets = all(info.details.get("max_new_tokens") in (None, budget_for(name)) for name, info in ran.items())
        if result.checkpoint.base_model == config.model.name and result.limit == config.eval.limit and set(ran) == suite and same_budgets:
            seconds.append(result.wall_time_s)
    return seconds


def stage_tokens(config: HarnessConfig, stage: str, data: Any, tokenizer: Any) -> int:
    """Tokens one training of `stage` processes: its training data times epochs, capped by max_steps."""
    settings = config.training.domain if stage == "domain" else config.training.instruct
    if stage == "domain":
        per_epoch = len(tokenizer(data.corpus.train_text, add_special_tokens=False)["input_ids"])
        longest = config.data.domain.max_length
    else:
        per_epoch = sum(len(tokenizer(c.prompt + c.response, add_special_tokens=False)["input_ids"]) for c in data.counseling.train)
        longest = settings.max_length
    tokens = int(per_epoch * settings.epochs)
    if settings.max_steps:
        tokens = min(tokens, settings.max_steps * settings.batch_size * settings.grad_accum * longest)
    return tokens


def machine_tokens_per_s(config: HarnessConfig, stage: str, model_config: Any, gflops: float) -> float:
    """Tokens/s the machine's measured matmul rate allows for this stage's sequence length."""
    from harness.models.throughput import estimated_tokens_per_s

    seq_len = config.data.domain.max_length if stage == "domain" else config.training.instruct.max_length
    return estimated_tokens_per_s(model_config, seq_len, gflops)


def show_plan(config: HarnessConfig) -> None:
    """Print every node (stage, parent, settings, what it serves) and the estimated training time."""
    from transformers import AutoConfig

    from harness.data.run_data import load_run_data
    from harness.models.loading import bf16_supported, load_tokenizer, resolve_model
    from harness.models.throughput import matmul_gflops

    plan = config.plan
    base_ref = resolve_model(config.model)
    tokenizer = load_tokenizer(base_ref, config.model)
    model_config = AutoConfig.from_pretrained(base_ref, trust_remote_code=config.model.trust_remote_code)
    gflops = matmul_gflops("bfloat16" if bf16_supported() else "float32", repeats=5, decode_gemms=False)
    data = load_run_data(config)
    table = Table(title="Plan (nothing is written by --dry-run)", show_lines=False)
    for column in ("node", "stage", "parent", "settings", "serves", "tokens", "est. time"):
        table.add_column(column, no_wrap=column in ("node", "parent"))
    serves: dict[str, int] = {}
    for member in plan.members:
        serves[member.node] = serves.get(member.node, 0) + 1
    total_seconds, from_machine = 0.0, 0
    measured = {stage: measured_tokens_per_s(config, stage) for stage in {arm.stage for arm in plan.lineage.arms}}
    for arm in plan.lineage.training_order():
        arm_config = config.arm_config(arm.name)
        tokens = stage_tokens(arm_config, arm.stage, data, tokenizer)
        speed = measured[arm.stage]
        if speed is None:
            speed, from_machine = machine_tokens_per_s(arm_config, arm.stage, model_config, gflops), from_machine + 1
        seconds = tokens / speed
        total_seconds += seconds
        settings = ", ".join(f"{k}={v}" for k, v in arm.overrides.items()) or "-"
        table.add_row(shown(arm.name), arm.stage, shown(arm.parent), shown(settings), str(serves.get(arm.name, 0)),
                      f"{tokens:,}", f"{seconds / 60:.1f} min")
    console.print(table)
    members, nodes = len(plan.members), len(plan.lineage.arms)
    base_evaluations = sum(1 for evaluation in plan.evaluations if evaluation.checkpoint == BASE)
    console.print(
        f"{len(config.table.arms)} table arm(s) x {len(plan.points)} grid point(s) x {len(plan.seeds)} seed(s) = {members} "
        f"arm instances -> {nodes} trained node(s) ({members - nodes} shared), {len(plan.evaluations)} evaluated "
        + ("(base once)" if base_evaluations == 1 else f"(each checkpoint once per eval setting: base {base_evaluations} times)")
    )
    note = (
        f"; {from_machine} node(s) estimated from this machine's matmul rate ({gflops:.0f} GFLOP/s) at the benchmark's "
        "recorded share of it, the others from earlier runs' tokens/s" if from_machine else "; from earlier runs' tokens/s"
    )
    console.print(f"Estimated training time: {total_seconds / 60:.1f} min{note}")
    show_eval_estimate(config)


def show_eval_estimate(config: HarnessConfig) -> None:
    """Print what the plan's evaluations would take, from earlier evaluations that ran the same way."""
    saved = saved_results(config.output_dir)
    earlier: dict[str, list[float]] = {}
    seconds, estimated = 0.0, 0
    for evaluation in config.plan.evaluations:
        settings = config.evaluation_config(evaluation.name)
        key = settings.eval.model_dump_json()
        if key not in earlier:
            earlier[key] = earlier_eval_seconds(settings, saved)
        if earlier[key]:
            seconds, estimated = seconds + statistics.median(earlier[key]), estimated + 1
    precedent = f"earlier evaluations under {config.output_dir} with the same model, evals, item limit and reply budgets"
    missing = len(config.plan.evaluations) - estimated
    if not estimated:
        console.print(f"Eval time: not estimated ({missing} evaluation(s); no {precedent}; a first run records them)")
        return
    console.print(
        f"Estimated eval time: {seconds / 60:.1f} min for {estimated} evaluation(s), each at the median wall time of {precedent}"
        + (f"; {missing} more with no such precedent, not counted" if missing else "")
    )
