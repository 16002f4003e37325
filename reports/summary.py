"""The summary tables: every metric of every checkpoint with its CI, and every paired delta the run computed.

Cells are already-formatted strings plus flags (best value, significant improvement/regression),
so the Markdown and HTML templates show the same facts and differ only in styling.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.run.results import EvalResult
from harness.reports.compare import Change, best_checkpoints, classify_change
from harness.reports.format import (
    MISSING,
    direction_arrow,
    format_ci,
    format_delta,
    format_delta_ci,
    format_p,
    format_value,
    presentations,
    significance_marker,
)
from harness.run.results import MetricPresentation

REFERENCE = "base"


@dataclass(frozen=True)
class SummaryCell:
    value: str
    ci: str
    delta: str
    """Delta vs base with its significance marker, or empty for base itself."""
    best: bool = False
    change: Change | None = None

    @property
    def regression(self) -> bool:
        return self.change == "regression"

    @property
    def improvement(self) -> bool:
        return self.change == "improvement"


@dataclass(frozen=True)
class SummaryRow:
    metric: str
    label: str
    section: str
    arrow: str
    cells: list[SummaryCell]


@dataclass(frozen=True)
class DeltaRow:
    metric: str
    label: str
    arrow: str
    comparison: str
    """e.g. `instruct − base`."""
    delta: str
    ci: str
    p_value: str
    marker: str
    test: str
    n: int
    change: Change


def all_metrics(results: dict[str, EvalResult]) -> list[str]:
    return list(presentations(results))


def _higher_is_better(results: dict[str, EvalResult], metric: str) -> bool | None:
    for result in results.values():
        if metric in result.metrics:
            return result.metrics[metric].higher_is_better
    return None


def _cell(result: EvalResult, metric: str, display: MetricPresentation, best: set[str], name: str) -> SummaryCell:
    value = result.metrics.get(metric)
    if value is None:
        return SummaryCell(value=MISSING, ci=MISSING, delta="")
    delta = result.deltas.get(metric, {}).get(REFERENCE) if name != REFERENCE else None
    if delta is None:
        return SummaryCell(format_value(display, value.value), format_ci(display, value.ci_low, value.ci_high), "", name in best)
    return SummaryCell(
        value=format_value(display, value.value),
        ci=format_ci(display, value.ci_low, value.ci_high),
        delta=f"Δ {format_delta(display, delta.delta)}{significance_marker(delta.p_value)}",
        best=name in best,
        change=classify_change(delta.delta, delta.p_value, value.higher_is_better),
    )


def summary_rows(results: dict[str, EvalResult]) -> list[SummaryRow]:
    """One row per metric, one cell per checkpoint (in `results` order)."""
    rows = []
    for metric, display in presentations(results).items():
        higher = _higher_is_better(results, metric)
        values = {name: r.metrics[metric].value for name, r in results.items() if metric in r.metrics}
        best = best_checkpoints(values, higher)
        rows.append(
            SummaryRow(
                metric=metric,
                label=display.label,
                section=display.section,
                arrow=direction_arrow(higher),
                cells=[_cell(result, metric, display, best, name) for name, result in results.items()],
            )
        )
    return rows


def delta_rows(results: dict[str, EvalResult]) -> list[DeltaRow]:
    """Every stored paired delta (vs base, and between arms), grouped by metric."""
    rows = []
    for metric, display in presentations(results).items():
        for name, result in results.items():
            if metric not in result.metrics:
                continue
            higher = result.metrics[metric].higher_is_better
            for reference, delta in result.deltas.get(metric, {}).items():
                rows.append(
                    DeltaRow(
                        metric=metric,
                        label=display.label,
                        arrow=direction_arrow(higher),
                        comparison=f"{name} − {reference}",
                        delta=format_delta(display, delta.delta),
                        ci=format_delta_ci(display, delta.ci_low, delta.ci_high),
                        p_value=format_p(delta.p_value),
                        marker=significance_marker(delta.p_value),
                        test=delta.test,
                        n=delta.n,
                        change=classify_change(delta.delta, delta.p_value, higher),
                    )
                )
    return rows
