"""The grid view: each contrast's delta at every grid point, each axis's main effect, and the verdict in seeds.

Built from `grid.json` alone. A table per contrast of the arms table (rows = grid points, columns =
the headline metrics of the stages the contrast differs by), so the first screen grows with the
grid's points, not with its nodes; every cell carries the delta over seeds, its interval including
training randomness, a significance mark, the between-seed SD and how many seeds moved each way.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.reports.compare import classify_change
from harness.reports.format import format_ci, format_delta, format_delta_ci, format_p, format_value, significance_marker
from harness.reports.verdict import VerdictSentence, metric_phrase
from harness.run.grid_results import GridResult, SeededValue
from harness.run.lineage import Lineage
from harness.run.results import MetricPresentation


@dataclass(frozen=True)
class GridTable:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    """(row label, one cell per column)."""


@dataclass(frozen=True)
class GridView:
    seeds: list[int]
    points: list[tuple[str, str]]
    """(point id, its settings)."""
    contrasts: list[GridTable]
    main_effects: list[GridTable]
    verdict: list[VerdictSentence]
    arms: GridTable | None
    """Every arm at every point: each metric's mean over seeds (folded in the report)."""


def _moved(value: SeededValue, higher_is_better: bool | None) -> int:
    """Replicates whose delta went the better way (the raising way for a descriptive metric)."""
    better_up = higher_is_better is not False
    return sum((d > 0) if better_up else (d < 0) for d in value.per_replicate)


def _cell(display: MetricPresentation, value: SeededValue, higher_is_better: bool | None) -> str:
    spread = format_delta(display, value.seed_sd).lstrip("+")
    return (
        f"Δ {format_delta(display, value.value)}{significance_marker(value.p_value)} "
        f"{format_delta_ci(display, value.ci_low, value.ci_high)} · seed SD {spread} · "
        f"items only {format_delta_ci(display, value.item_ci_low, value.item_ci_high)} · "
        f"better in {_moved(value, higher_is_better)}/{value.n_replicates}"
    )


def _arm_table(grid: GridResult) -> GridTable | None:
    found = {(v.arm, v.point, v.metric): v.value for v in grid.arm_values}
    if not found:
        return None
    metrics = list(grid.presentation)
    rows = []
    for arm, point in dict.fromkeys((arm, point) for arm, point, _ in found):
        cells = []
        for metric in metrics:
            value, display = found.get((arm, point, metric)), grid.presentation[metric]
            cells.append("—" if value is None else f"{format_value(display, value.value)} {format_ci(display, value.ci_low, value.ci_high)} "
                                                    f"· seed SD {format_delta(display, value.seed_sd).lstrip('+')}")
        rows.append((f"{arm} @ {point}", cells))
    return GridTable("Per arm, mean over seeds [95% CI with seeds]", [grid.presentation[m].label for m in metrics], rows)


def _headline_metrics(grid: GridResult, lineage: Lineage, arm: str, reference: str) -> list[str]:
    stages = lineage.stages_between(arm, reference)
    return [m for m, p in grid.presentation.items() if p.verdict == "headline" and p.headline_stage in stages]


def _sentence(grid: GridResult, label: str, metric: str, cells: dict[str, SeededValue]) -> VerdictSentence:
    display, higher = grid.presentation[metric], grid.higher_is_better.get(metric)
    labels = {p.id: p.label for p in grid.points}
    parts = [
        f"better in {_moved(v, higher)} of {v.n_replicates} seeds at {labels[point]} (mean Δ {format_delta(display, v.value)}, "
        f"95% CI with seeds {format_delta_ci(display, v.ci_low, v.ci_high)}, {format_p(v.p_value)})"
        for point, v in cells.items()
    ]
    changes = {classify_change(v.value, v.p_value, higher) for v in cells.values()}
    change = "regression" if "regression" in changes else "improvement" if changes == {"improvement"} else None
    return VerdictSentence(f"{label}, {metric_phrase(display)}: " + "; ".join(parts) + ".", change)


def grid_view(grid: GridResult, table: Lineage) -> GridView:
    contrasts, sentences = [], []
    for contrast in table.contrasts():
        metrics = _headline_metrics(grid, table, contrast.arm, contrast.reference)
        found = {(c.point, c.metric): c.delta for c in grid.cells if (c.arm, c.reference) == (contrast.arm, contrast.reference)}
        if not metrics or not found:
            continue
        rows = [
            (point.label, [_cell(grid.presentation[m], found[(point.id, m)], grid.higher_is_better.get(m)) if (point.id, m) in found else "—"
                           for m in metrics])
            for point in grid.points
        ]
        contrasts.append(GridTable(contrast.label, [grid.presentation[m].label for m in metrics], rows))
        for metric in metrics:
            cells = {point.id: found[(point.id, metric)] for point in grid.points if (point.id, metric) in found}
            if cells:
                sentences.append(_sentence(grid, contrast.label, metric, cells))
    effects = []
    for contrast in table.contrasts():
        metrics = _headline_metrics(grid, table, contrast.arm, contrast.reference)
        found = {(e.axis, e.value, e.metric): e.delta for e in grid.main_effects if (e.arm, e.reference) == (contrast.arm, contrast.reference)}
        keys = list(dict.fromkeys((axis, value) for axis, value, _ in found))
        if metrics and keys:
            rows = [
                (f"{axis} = {value}", [_cell(grid.presentation[m], found[(axis, value, m)], grid.higher_is_better.get(m)) if (axis, value, m) in found else "—"
                                       for m in metrics])
                for axis, value in keys
            ]
            effects.append(GridTable(contrast.label, [grid.presentation[m].label for m in metrics], rows))
    return GridView(grid.seeds, [(p.id, p.label) for p in grid.points], contrasts, effects, sentences, _arm_table(grid))
