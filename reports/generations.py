"""Which counseling prompts the report shows side by side, and the replies of every checkpoint to them.

A fixed, seeded sample shows typical behaviour; the largest gains and losses in per-prompt ROUGE-L
of the instruction-tuned checkpoint over base show where tuning helped and where it hurt. Picking
only extremes would mislead, picking only at random would hide the failures, so the report shows both.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from harness.reports.format import format_delta, format_value
from harness.run.lineage import BASE, Lineage
from harness.run.results import MetricPresentation, SampleRecord

RANKING_METRIC = "rougeL"
SHOWN_METRICS = ("rougeL", "bertscore_f1")


@dataclass(frozen=True)
class GenerationReply:
    checkpoint: str
    output: str | None
    rouge_l: str
    bertscore: str
    flags: list[str]


@dataclass(frozen=True)
class GenerationRow:
    item_id: str
    prompt: str
    reference: str
    replies: list[GenerationReply]
    delta: str
    """Per-prompt ROUGE-L of the target checkpoint minus base's, or — when either is missing."""


@dataclass(frozen=True)
class GenerationGroup:
    title: str
    description: str
    rows: list[GenerationRow]


def ranking_target(checkpoints: list[str], lineage: Lineage) -> str | None:
    """The checkpoint whose per-prompt gain over base ranks the prompts: the instruction-tuned arm with the
    longest lineage (the full pipeline), else the arm with the longest lineage; the first in the table on ties."""
    arms = [arm for arm in lineage.training_order() if arm.name in checkpoints]
    if not arms:
        return None
    return max(arms, key=lambda arm: (arm.stage == "instruct", len(lineage.ancestors(arm.name)))).name


def per_item_delta(target: dict[str, SampleRecord], reference: dict[str, SampleRecord], item_id: str) -> float | None:
    a, b = target.get(item_id), reference.get(item_id)
    if a is None or b is None or RANKING_METRIC not in a.values or RANKING_METRIC not in b.values:
        return None
    return a.values[RANKING_METRIC] - b.values[RANKING_METRIC]


def _row(
    item_id: str, by_checkpoint: dict[str, dict[str, SampleRecord]], delta: float | None, displays: dict[str, MetricPresentation]
) -> GenerationRow:
    first = next(records[item_id] for records in by_checkpoint.values() if item_id in records)
    replies = []
    for checkpoint, records in by_checkpoint.items():
        record = records.get(item_id)
        replies.append(
            GenerationReply(
                checkpoint=checkpoint,
                output=record.output if record else None,
                rouge_l=format_value(displays["rougeL"], record.values.get("rougeL") if record else None),
                bertscore=format_value(displays["bertscore_f1"], record.values.get("bertscore_f1") if record else None),
                flags=list(record.flags) if record else [],
            )
        )
    return GenerationRow(item_id, first.prompt or "", first.reference or "", replies, format_delta(displays[RANKING_METRIC], delta))


def generation_groups(
    similarity_samples: dict[str, list[SampleRecord]],
    seed: int,
    lineage: Lineage,
    presented: dict[str, MetricPresentation],
    n_sample: int = 5,
    n_extreme: int = 3,
) -> list[GenerationGroup]:
    """A seeded sample, then the best and worst prompts by per-prompt ROUGE-L gain of the target over base."""
    by_checkpoint = {name: {r.id: r for r in records} for name, records in similarity_samples.items() if records}
    if not by_checkpoint:
        return []
    displays = {metric: presented.get(metric) or MetricPresentation(label=metric) for metric in SHOWN_METRICS}
    item_ids = sorted({item_id for records in by_checkpoint.values() for item_id in records})
    target = ranking_target(list(by_checkpoint), lineage)
    deltas: dict[str, float] = {}
    if target and BASE in by_checkpoint:
        for item_id in item_ids:
            value = per_item_delta(by_checkpoint[target], by_checkpoint[BASE], item_id)
            if value is not None and math.isfinite(value):
                deltas[item_id] = value
    groups = []
    shown: set[str] = set()
    if deltas:
        ranked = sorted(deltas, key=lambda i: (-deltas[i], i))
        best = ranked[:n_extreme]
        worst = [i for i in reversed(ranked) if i not in best][:n_extreme]
        for title, ids, which in (("Best", best, "highest"), ("Worst", worst, "lowest")):
            description = f"The {len(ids)} prompts where {target}'s ROUGE-L minus base's is {which}."
            groups.append(GenerationGroup(f"{title} {len(ids)} by ROUGE-L Δ vs base", description,
                                          [_row(i, by_checkpoint, deltas.get(i), displays) for i in ids]))
            shown.update(ids)
    remaining = [i for i in item_ids if i not in shown]
    sample = sorted(random.Random(seed).sample(remaining, min(n_sample, len(remaining))))
    if sample:
        groups.insert(0, GenerationGroup(
            "Seeded sample",
            f"{len(sample)} prompts drawn with seed {seed} from the {len(remaining)} not shown below.",
            [_row(i, by_checkpoint, deltas.get(i), displays) for i in sample],
        ))
    return groups
