"""How numbers are shown: one place decides precision, units and markers, so both formats agree.

Rates are stored as fractions and shown as percentages (deltas in percentage points); every other
metric keeps its stored unit. How a metric is shown (label, decimals, unit) comes from its eval's
registration, saved with the results (`MetricPresentation`); this module knows no metric.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from harness.run.results import EvalResult, MetricPresentation

MISSING = "—"


def presentations(results: dict[str, EvalResult]) -> dict[str, MetricPresentation]:
    """metric -> how to show it, as its eval declared it, in reading order (by report section, then as registered).

    A metric saved without a presentation (older results, lm-eval task metrics) is shown by its name
    with three decimals.
    """
    found: dict[str, MetricPresentation] = {}
    for result in results.values():
        for metric in result.metrics:
            if metric not in found:
                found[metric] = result.presentation.get(metric) or MetricPresentation(label=metric)
    sections = list(dict.fromkeys(p.section for p in found.values()))
    return dict(sorted(found.items(), key=lambda item: sections.index(item[1].section)))


LARGEST_FIXED = 1e12
"""Numbers this large or larger are shown in scientific notation: fixed decimals would print hundreds of digits."""


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def _fixed(number: float, decimals: int, sign: str = "") -> str:
    """`number` with `decimals` places, or as `1.7e+308` when it is absurdly large for fixed notation."""
    if abs(number) >= LARGEST_FIXED:
        return f"{number:{sign}.3g}"
    return f"{number:{sign}.{decimals}f}"


def _not_a_number(value: float | None) -> str:
    """— for a missing value; a stored NaN or infinity says so (`nan`, `inf`, `-inf`) rather than passing as missing."""
    return MISSING if value is None else str(value)


def format_value(display: MetricPresentation, value: float | None) -> str:
    if not _finite(value):
        return _not_a_number(value)
    if display.percent:
        return f"{_fixed(value * 100, display.decimals)}%"
    return _fixed(value, display.decimals)


def format_ci(display: MetricPresentation, low: float | None, high: float | None) -> str:
    if not (_finite(low) and _finite(high)):
        return MISSING
    return f"[{format_value(display, low)}, {format_value(display, high)}]"


def format_delta(display: MetricPresentation, delta: float | None) -> str:
    """A signed difference; rates in percentage points (`pp`), since a difference of percentages is not a percentage."""
    if not _finite(delta):
        return _not_a_number(delta)
    if display.percent:
        return f"{_fixed(delta * 100, display.decimals, '+')} pp"
    return _fixed(delta, display.decimals, "+")


def format_delta_ci(display: MetricPresentation, low: float | None, high: float | None) -> str:
    if not (_finite(low) and _finite(high)):
        return MISSING
    return f"[{format_delta(display, low)}, {format_delta(display, high)}]"


def significance_marker(p_value: float | None) -> str:
    """`**` for p < 0.01, `*` for p < 0.05, empty otherwise."""
    if not _finite(p_value):
        return ""
    if p_value < 0.01:
        return "**"
    if p_value < 0.05:
        return "*"
    return ""


def format_p(p_value: float | None) -> str:
    if not _finite(p_value):
        return MISSING
    if p_value < 0.001:
        return f"p={p_value:.1e}"
    return f"p={p_value:.3f}"


def direction_arrow(higher_is_better: bool | None) -> str:
    """↑ when higher is better, ↓ when lower is better, nothing for descriptive counts."""
    if higher_is_better is None:
        return ""
    return "↑" if higher_is_better else "↓"


def format_duration(seconds: float | None) -> str:
    if not _finite(seconds):
        return MISSING
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def format_number(value: float | int | None, decimals: int = 1) -> str:
    """Thousands-separated plain number (token counts, throughput)."""
    number = None if value is None else float(value)
    if not _finite(number):
        return MISSING
    if abs(number) >= LARGEST_FIXED:
        return _fixed(number, decimals)
    if number.is_integer() and decimals == 0:
        return f"{int(number):,}"
    return f"{number:,.{decimals}f}"


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """A one-line text plot of a series (loss curves in the Markdown report)."""
    plain = [v for v in values if math.isfinite(v) and abs(v) < LARGEST_FIXED]
    if not plain:
        return MISSING
    low, high = min(plain), max(plain)
    span = (high - low) or 1.0
    top = len(SPARK_LEVELS) - 1
    return "".join(SPARK_LEVELS[round((v - low) / span * top)] if v in plain else " " for v in values)
