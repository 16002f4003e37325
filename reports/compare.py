"""Whether a paired delta is an improvement, a regression or no significant change.

One rule for the whole report: a change counts only when its paired test gives p < 0.05, and its
sign is read against the metric's better direction. Metrics with no better direction (descriptive
counts) are never improvements or regressions.
"""

from __future__ import annotations

import math
from typing import Literal

SIGNIFICANCE_LEVEL = 0.05

Change = Literal["improvement", "regression", "no significant change", "changed"]
"""`changed`: significant, but the metric has no better direction."""


def classify_change(delta: float, p_value: float, higher_is_better: bool | None) -> Change:
    if not (math.isfinite(delta) and math.isfinite(p_value)) or p_value >= SIGNIFICANCE_LEVEL or delta == 0:
        return "no significant change"
    if higher_is_better is None:
        return "changed"
    return "improvement" if (delta > 0) == higher_is_better else "regression"


def best_checkpoints(values: dict[str, float], higher_is_better: bool | None) -> set[str]:
    """Checkpoints holding the best value (several on a tie); none for directionless metrics, a lone
    value, or when every checkpoint has the same value (highlighting all of them would say nothing)."""
    finite = {name: v for name, v in values.items() if math.isfinite(v)}
    if higher_is_better is None or len(set(finite.values())) < 2:
        return set()
    best = max(finite.values()) if higher_is_better else min(finite.values())
    return {name for name, v in finite.items() if v == best}

