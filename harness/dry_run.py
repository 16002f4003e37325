"""`harness run-all --dry-run`: the expanded plan, what it shares and what it would cost, with nothing written.

Training cost is estimated from the stage's token count (read from the data with the tokenizer,
times epochs, capped by `max_steps`) and the tokens/s that earlier runs of the same model and stage
measured (their manifests under `output_dir`); without such a run, the tokens alone are shown.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.core.console import console, shown
from harness.run.config import HarnessConfig
from harness.run.manifest import MANIFEST_NAME, Manifest


def measured_tokens_per_s(config: HarnessConfig, stage: str) -> float | None:
    """Median tokens/s of earlier trainings of this model and stage found under `output_dir`."""
    speeds = []
    for path in Path(config.output_dir).glob(f"*/checkpoints/*/{MANIFEST_NAME}"):
        try:
            manifest = Manifest.load(path.parent)
        except ValueError:
            continue
        if manifest.stage == stage and manifest.base_model == config.model.name and manifest.tokens_per_s > 0:
            speeds.append(manifest.tokens_per_s)
    return statistics.median(speeds) if speeds else None


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


def show_plan(config: HarnessConfig) -> None:
    """Print every node (stage, parent, settings, what it serves) and the estimated training time."""
    from harness.data.run_data import load_run_data
    from harness.models.loading import load_tokenizer, resolve_model

    plan = config.plan
    tokenizer = load_tokenizer(resolve_model(config.model), config.model)
    data = load_run_data(config)
    table = Table(title="Plan (nothing is written by --dry-run)", show_lines=False)
    for column in ("node", "stage", "parent", "settings", "serves", "tokens", "est. time"):
        table.add_column(column)
    serves: dict[str, int] = {}
    for member in plan.members:
        serves[member.node] = serves.get(member.node, 0) + 1
    total_seconds, unknown = 0.0, 0
    for arm in plan.lineage.training_order():
        arm_config = config.arm_config(arm.name)
        tokens = stage_tokens(arm_config, arm.stage, data, tokenizer)
        speed = measured_tokens_per_s(config, arm.stage)
        seconds = tokens / speed if speed else None
        total_seconds += seconds or 0.0
        unknown += seconds is None
        settings = ", ".join(f"{k}={v}" for k, v in arm.overrides.items()) or "-"
        table.add_row(shown(arm.name), arm.stage, shown(arm.parent), shown(settings), str(serves.get(arm.name, 0)),
                      f"{tokens:,}", f"{seconds / 60:.1f} min" if seconds else "unknown")
    console.print(table)
    members, nodes = len(plan.members), len(plan.lineage.arms)
    console.print(
        f"{len(config.table.arms)} table arm(s) x {len(plan.points)} grid point(s) x {len(plan.seeds)} seed(s) = {members} "
        f"arm instances -> {nodes} trained node(s) ({members - nodes} shared), {nodes + 1} evaluated (base once)"
    )
    note = f"; {unknown} node(s) without a measured speed (no earlier run of this model and stage)" if unknown else ""
    console.print(f"Estimated training time: {total_seconds / 60:.1f} min{note}")
