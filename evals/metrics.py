"""From scored items to reported numbers: a metric's value with its CI, and paired deltas between checkpoints.

Both read `SampleRecord`s only, so they are the same whether the records were just produced or read
back from a per-sample log.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.evals.registry import EvalSpec, MetricSpec
from harness.evals.stats import aggregate, bootstrap_ci, mcnemar_exact, paired_bootstrap
from harness.run.results import Delta, MetricValue, SampleRecord


def _counted(spec: MetricSpec, records: Sequence[SampleRecord]) -> list[SampleRecord]:
    """The records this metric counts: those with its value, of its category if it has one."""
    return [r for r in records if spec.name in r.values and (spec.category is None or r.category == spec.category)]


def _items(spec: MetricSpec, records: Sequence[SampleRecord]) -> dict[str, tuple[float, float]]:
    """id -> (value, weight) for the records this metric counts."""
    return {r.id: (r.values[spec.name], r.weights.get(spec.name, 1.0)) for r in _counted(spec, records)}


def capped_share(spec: MetricSpec, records: Sequence[SampleRecord]) -> float:
    """Share of the metric's items whose reply was cut at the token cap (flag `hit_token_cap`)."""
    counted = _counted(spec, records)
    return sum("hit_token_cap" in r.flags for r in counted) / len(counted) if counted else 0.0


def metric_value(
    spec: MetricSpec, records: Sequence[SampleRecord], *, resamples: int, seed: int, generated: bool = False
) -> MetricValue | None:
    """The metric over all its items with a 95% bootstrap CI; None when no item carries it.

    `generated`: the items are generated replies, so the value carries the share cut at the token cap.
    """
    items = _items(spec, records)
    if not items:
        return None
    values, weights = (np.array(column, dtype=float) for column in zip(*items.values()))
    low, high = bootstrap_ci(values, weights, spec.aggregation, resamples=resamples, seed=seed)
    return MetricValue(
        value=aggregate(spec.aggregation, values, weights),
        ci_low=low,
        ci_high=high,
        n=len(items),
        higher_is_better=spec.higher_is_better,
        capped_share=capped_share(spec, records) if generated else None,
    )


def eval_metrics(spec: EvalSpec, records: Sequence[SampleRecord], *, resamples: int, seed: int) -> dict[str, MetricValue]:
    """Every metric of one eval that its records carry, each with its CI."""
    values = {
        metric.name: metric_value(metric, records, resamples=resamples, seed=seed, generated=spec.needs_generation)
        for metric in spec.metrics
    }
    return {name: value for name, value in values.items() if value is not None}


def metric_delta(
    spec: MetricSpec,
    records: Sequence[SampleRecord],
    reference_records: Sequence[SampleRecord],
    reference: str,
    *,
    resamples: int,
    seed: int,
) -> Delta | None:
    """This checkpoint minus the reference over the items both scored, with a paired test."""
    mine, theirs = _items(spec, records), _items(spec, reference_records)
    shared = sorted(mine.keys() & theirs.keys())
    if not shared:
        return None
    a = np.array([mine[i] for i in shared], dtype=float)
    b = np.array([theirs[i] for i in shared], dtype=float)
    delta, low, high, p_value = paired_bootstrap(
        a[:, 0], a[:, 1], b[:, 0], b[:, 1], spec.aggregation, resamples=resamples, seed=seed
    )
    test = "paired_bootstrap"
    if spec.paired_test == "mcnemar_exact":
        p_value, test = mcnemar_exact(a[:, 0] > 0.5, b[:, 0] > 0.5), "mcnemar_exact"
    return Delta(reference=reference, delta=delta, ci_low=low, ci_high=high, p_value=p_value, test=test, n=len(shared))
