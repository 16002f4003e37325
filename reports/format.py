"""How numbers are shown: one place decides precision, units and markers, so both formats agree.

Rates are stored as fractions and shown as percentages (deltas in percentage points); every other
metric keeps its stored unit. Metrics the table does not know get a plain three-decimal rendering,
so a new eval appears in the report without touching this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeGuard

MISSING = "—"


@dataclass(frozen=True)
class MetricDisplay:
    label: str
    decimals: int
    percent: bool = False
    count: bool = False


METRIC_DISPLAY: dict[str, MetricDisplay] = {
    "heldout_perplexity": MetricDisplay("Held-out perplexity", 2),
    "heldout_bits_per_byte": MetricDisplay("Held-out bits/byte", 3),
    "rouge1": MetricDisplay("ROUGE-1", 3),
    "rouge2": MetricDisplay("ROUGE-2", 3),
    "rougeL": MetricDisplay("ROUGE-L", 3),
    "bertscore_f1": MetricDisplay("BERTScore F1", 3),
    "refusal_rate_harmful": MetricDisplay("Refusal rate (harmful)", 1, percent=True),
    "over_refusal_rate_benign": MetricDisplay("Over-refusal rate (benign)", 1, percent=True),
    "crisis_referral_rate": MetricDisplay("Crisis referral rate", 1, percent=True),
    "unverified_hotlines": MetricDisplay("Unverified hotlines", 0, count=True),
}
METRIC_ORDER = list(METRIC_DISPLAY)


def metric_display(metric: str) -> MetricDisplay:
    return METRIC_DISPLAY.get(metric, MetricDisplay(metric, 3))


def ordered_metrics(names: set[str] | list[str]) -> list[str]:
    """Known metrics in the report's reading order, then any others alphabetically."""
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(set(names) - set(known))


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def format_value(metric: str, value: float | None) -> str:
    if not _finite(value):
        return MISSING
    display = metric_display(metric)
    if display.percent:
        return f"{value * 100:.{display.decimals}f}%"
    return f"{value:.{display.decimals}f}"


def format_ci(metric: str, low: float | None, high: float | None) -> str:
    if not (_finite(low) and _finite(high)):
        return MISSING
    return f"[{format_value(metric, low)}, {format_value(metric, high)}]"


def format_delta(metric: str, delta: float | None) -> str:
    """A signed difference; rates in percentage points (`pp`), since a difference of percentages is not a percentage."""
    if not _finite(delta):
        return MISSING
    display = metric_display(metric)
    if display.percent:
        return f"{delta * 100:+.{display.decimals}f} pp"
    return f"{delta:+.{display.decimals}f}"


def format_delta_ci(metric: str, low: float | None, high: float | None) -> str:
    if not (_finite(low) and _finite(high)):
        return MISSING
    return f"[{format_delta(metric, low)}, {format_delta(metric, high)}]"


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
    if number.is_integer() and decimals == 0:
        return f"{int(number):,}"
    return f"{number:,.{decimals}f}"


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """A one-line text plot of a series (loss curves in the Markdown report)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return MISSING
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    top = len(SPARK_LEVELS) - 1
    return "".join(SPARK_LEVELS[round((v - low) / span * top)] if math.isfinite(v) else " " for v in values)
