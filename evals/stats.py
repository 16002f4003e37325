"""Aggregation, bootstrap confidence intervals and paired significance tests over per-item scores.

Every metric in a results file is an aggregate of per-item `(value, weight)` pairs (see
`harness.run.results.Aggregation`); the item is the unit the bootstrap resamples, so a perplexity CI
resamples windows/sections, not tokens. Resampling is vectorised: a block of resamples is one
index matrix, and each row's aggregate is computed at once.
"""

from __future__ import annotations

import math

import numpy as np

from harness.run.results import Aggregation

_MAX_INDEX_CELLS = 4_000_000
"""Resample rows are drawn in blocks of at most this many indices, to bound memory."""


def aggregate_rows(aggregation: Aggregation, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Aggregate each row of 2-D `values`/`weights`; a row whose weights sum to 0 gives nan."""
    if aggregation == "mean":
        return values.mean(axis=1)
    if aggregation == "sum":
        return values.sum(axis=1)
    total_weight = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total_weight != 0, values.sum(axis=1) / total_weight, np.nan)
    if aggregation == "ratio":
        return ratio
    if aggregation == "exp_ratio":
        with np.errstate(over="ignore"):
            return np.exp(ratio)
    raise ValueError(f"unknown aggregation {aggregation!r}; expected mean, ratio, exp_ratio or sum")


def _as_items(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("cannot aggregate zero items")
    if values.shape != weights.shape:
        raise ValueError(f"values and weights differ in length ({values.size} vs {weights.size})")
    return values, weights


def aggregate(aggregation: Aggregation, values: np.ndarray, weights: np.ndarray) -> float:
    """One number from per-item values and weights; weights matter only for `ratio` and `exp_ratio`."""
    values, weights = _as_items(values, weights)
    result = float(aggregate_rows(aggregation, values[None, :], weights[None, :])[0])
    if math.isnan(result):
        raise ValueError(f"{aggregation} aggregation needs a non-zero total weight")
    return result


def resample_index_blocks(n_items: int, resamples: int, seed: int):
    """Yield index matrices (rows = resamples) that together hold `resamples` rows of `n_items` draws."""
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, _MAX_INDEX_CELLS // n_items)
    remaining = resamples
    while remaining > 0:
        rows = min(rows_per_block, remaining)
        yield rng.integers(0, n_items, size=(rows, n_items))
        remaining -= rows


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: np.ndarray,
    weights: np.ndarray,
    aggregation: Aggregation,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the aggregate, resampling items with replacement.

    Resamples whose weights sum to zero (possible only with zero-weight items) are left out.
    """
    values, weights = _as_items(values, weights)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    aggregate(aggregation, values, weights)
    samples = np.concatenate(
        [
            aggregate_rows(aggregation, values[index], weights[index])
            for index in resample_index_blocks(values.size, resamples, seed)
        ]
    )
    return percentile_interval(samples, confidence)


def paired_bootstrap(
    values_a: np.ndarray,
    weights_a: np.ndarray,
    values_b: np.ndarray,
    weights_b: np.ndarray,
    aggregation: Aggregation,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float, float]:
    """`(delta, ci_low, ci_high, p_value)` for agg(a) - agg(b) over the same items, item i of a paired with item i of b.

    Each resample draws one index row and applies it to both sides, so per-item correlation
    between a and b is kept. The two-sided p-value inverts the percentile interval: it is
    `2 * (1 + #resampled deltas on the far side of 0, 0 included) / (resamples + 1)`, capped at 1,
    the smallest level at which that interval would exclude 0. So p < 1 - confidence exactly when
    the reported CI lies on one side of 0, and the significance marker never contradicts the CI.
    """
    values_a, weights_a = _as_items(values_a, weights_a)
    values_b, weights_b = _as_items(values_b, weights_b)
    if values_a.size != values_b.size:
        raise ValueError(f"paired samples differ in length ({values_a.size} vs {values_b.size})")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    delta = aggregate(aggregation, values_a, weights_a) - aggregate(aggregation, values_b, weights_b)
    deltas = np.concatenate(
        [
            aggregate_rows(aggregation, values_a[index], weights_a[index])
            - aggregate_rows(aggregation, values_b[index], weights_b[index])
            for index in resample_index_blocks(values_a.size, resamples, seed)
        ]
    )
    deltas = deltas[~np.isnan(deltas)]
    ci_low, ci_high = percentile_interval(deltas, confidence)
    at_or_below = int(np.count_nonzero(deltas <= 0.0))
    at_or_above = int(np.count_nonzero(deltas >= 0.0))
    p_value = min(1.0, 2.0 * (1 + min(at_or_below, at_or_above)) / (deltas.size + 1))
    return delta, ci_low, ci_high, p_value


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (e.g. refused / did not refuse).

    Only discordant pairs carry information; under the null each falls either way with
    probability 1/2, so the p-value is twice the smaller binomial tail, capped at 1.
    """
    a = np.asarray(a, dtype=bool).ravel()
    b = np.asarray(b, dtype=bool).ravel()
    if a.size == 0:
        raise ValueError("cannot test zero items")
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length ({a.size} vs {b.size})")
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)
