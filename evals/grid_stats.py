"""What a grid run found: each arm and contrast at each grid point, and each axis's main effect, over seeds and items.

Reads the per-sample logs of the plan's evaluations (never a model) and writes `grid.json` in the run directory: for
every contrast of the arms table (each arm vs base, vs its parent, and the named ones), every grid
point and every metric, the paired delta averaged over seeds with an interval that includes training
randomness (`harness.evals.seed_stats`), the between-seed SD, the item-only interval and how many
seeds moved each way. A main effect pools the points that share an axis value: each (point, seed)
is one replicate, so the other axes' spread counts as variation, not as signal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.evals.registry import MetricSpec, get_eval
from harness.evals.seed_stats import SeededEstimate, seeded_delta, seeded_metric
from harness.evals.stats import aggregate
from harness.run.config import HarnessConfig
from harness.run.grid import GridPoint, Plan
from harness.run.grid_results import ArmValue, GridCell, GridResult, MainEffect, PointInfo, SeededValue
from harness.run.layout import RunLayout
from harness.run.lineage import Contrast
from harness.run.results import SampleRecord, read_samples

SampleReader = Callable[[str, str], list[SampleRecord]]
"""(evaluation, eval name) -> that evaluation's per-sample records."""


def _matrix(records: list[list[SampleRecord]], metric: MetricSpec, items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, weights), rows = replicates, columns = `items`."""
    rows = [{r.id: r for r in replicate} for replicate in records]
    values = np.array([[row[i].values[metric.name] for i in items] for row in rows], dtype=float)
    weights = np.array([[row[i].weights.get(metric.name, 1.0) for i in items] for row in rows], dtype=float)
    return values, weights


def _shared_items(records: list[list[SampleRecord]], metric: MetricSpec) -> list[str]:
    """Item ids every replicate scored for this metric (its category only), so rows pair item by item."""
    sets = [
        {r.id for r in replicate if metric.name in r.values and (metric.category is None or r.category == metric.category)}
        for replicate in records
    ]
    return sorted(set.intersection(*sets)) if sets else []


def _estimate(
    pairs: list[tuple[str, str]], eval_name: str, metric: MetricSpec, read: SampleReader, config: HarnessConfig
) -> SeededValue | None:
    """Delta of the first node of each pair minus the second, over the replicates the pairs are."""
    mine = [read(a, eval_name) for a, _ in pairs]
    theirs = [read(b, eval_name) for _, b in pairs]
    items = _shared_items(mine + theirs, metric)
    if not items:
        return None
    values_a, weights_a = _matrix(mine, metric, items)
    values_b, weights_b = _matrix(theirs, metric, items)
    estimate = seeded_delta(values_a, weights_a, values_b, weights_b, metric.aggregation,
                            resamples=config.eval.bootstrap_resamples, seed=config.seed)
    per_replicate = [
        aggregate(metric.aggregation, values_a[i], weights_a[i]) - aggregate(metric.aggregation, values_b[i], weights_b[i])
        for i in range(len(pairs))
    ]
    return _seeded_value(estimate, per_replicate)


def _arm_value(nodes: list[str], eval_name: str, metric: MetricSpec, read: SampleReader, config: HarnessConfig) -> SeededValue | None:
    """A metric of the nodes (one per seed) averaged over seeds, with its seeds x items interval."""
    records = [read(node, eval_name) for node in nodes]
    items = _shared_items(records, metric)
    if not items:
        return None
    values, weights = _matrix(records, metric, items)
    estimate = seeded_metric(values, weights, metric.aggregation, resamples=config.eval.bootstrap_resamples, seed=config.seed)
    return _seeded_value(estimate, [aggregate(metric.aggregation, v, w) for v, w in zip(values, weights)], with_p=False)


def _seeded_value(estimate: SeededEstimate, per_replicate: list[float], *, with_p: bool = True) -> SeededValue:
    return SeededValue(
        value=estimate.value, ci_low=estimate.ci_low, ci_high=estimate.ci_high, p_value=estimate.p_value if with_p else None,
        seed_sd=estimate.seed_sd, item_ci_low=estimate.item_ci[0], item_ci_high=estimate.item_ci[1],
        n_replicates=estimate.n_seeds, n_items=estimate.n_items, per_replicate=per_replicate,
    )


def _pairs(plan: Plan, contrast: Contrast, points: list[GridPoint]) -> list[tuple[str, str]]:
    return [(plan.result(contrast.arm, p.id, s), plan.result(contrast.reference, p.id, s)) for p in points for s in plan.seeds]


def grid_results(config: HarnessConfig, read: SampleReader) -> GridResult:
    """Every table contrast x grid point x metric, and every axis value's main effect."""
    plan = config.plan
    specs = [(name, metric) for name in config.eval.suite for metric in get_eval(name).metrics]
    cells, effects, arm_values = [], [], []
    for arm in config.table.arms:
        for eval_name, metric in specs:
            for point in plan.points:
                nodes = [plan.result(arm.name, point.id, seed) for seed in plan.seeds]
                value = _arm_value(nodes, eval_name, metric, read, config)
                if value is not None:
                    arm_values.append(ArmValue(arm=arm.name, point=point.id, metric=metric.name, value=value))
    for contrast in config.table.contrasts():
        for eval_name, metric in specs:
            for point in plan.points:
                value = _estimate(_pairs(plan, contrast, [point]), eval_name, metric, read, config)
                if value is not None:
                    cells.append(GridCell(arm=contrast.arm, reference=contrast.reference, label=contrast.label,
                                          point=point.id, metric=metric.name, delta=value))
            for axis, values in config.grid.items():
                for axis_value in values if len(values) > 1 else []:
                    matching = [p for p in plan.points if p.axes[axis] == axis_value]
                    value = _estimate(_pairs(plan, contrast, matching), eval_name, metric, read, config)
                    if value is not None:
                        effects.append(MainEffect(arm=contrast.arm, reference=contrast.reference, label=contrast.label,
                                                  axis=axis, value=str(axis_value), metric=metric.name, delta=value))
    return GridResult(
        points=[PointInfo(id=p.id, label=p.label, axes={k: str(v) for k, v in p.axes.items()}) for p in plan.points],
        seeds=plan.seeds,
        arm_values=arm_values,
        cells=cells,
        main_effects=effects,
        presentation={metric.name: metric.presentation for _, metric in specs},
        higher_is_better={metric.name: metric.higher_is_better for _, metric in specs},
    )


def write_grid_results(layout: RunLayout, config: HarnessConfig) -> Path:
    """Compute and save the run's `grid.json` from the nodes' sample logs."""
    cache: dict[tuple[str, str], list[SampleRecord]] = {}

    def read(node: str, eval_name: str) -> list[SampleRecord]:
        if (node, eval_name) not in cache:
            cache[(node, eval_name)] = read_samples(layout.samples(node, eval_name))
        return cache[(node, eval_name)]

    grid_results(config, read).save(layout.grid_json)
    return layout.grid_json
