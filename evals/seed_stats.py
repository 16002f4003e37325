"""Intervals that include training randomness: a metric, or a paired delta, over seed replicates x items.

With seed replicates, every seed's checkpoint is scored on the same items, so seeds and items are
crossed. The mean over seeds of a metric then varies with the items drawn and with the seeds drawn:
- the item part is estimated by resampling items, one index row applied to every seed at once (as
  the single-run bootstrap does, and keeping each item's pairing across seeds and arms);
- the seed part is the variance between the seeds' values divided by the number of seeds (those
  values share every item, so their spread is training randomness, plus seed x item interaction).
The interval's half-width is sqrt(z^2 * item part + t^2 * seed part), each part scaled by the
quantile of its own reference distribution: normal for the items (dozens of them), Student t with
seeds - 1 degrees of freedom for the seeds (2 to 5 of them, so a normal quantile would under-cover).
A single Welch-Satterthwaite t under-covered in simulation (0.92 at 3 seeds x 40 items, where the
seed part dominates); this form covered 0.95-0.98 over seed SDs from 0 to 2x the item SD
(tests/test_seed_stats.py checks it). With one seed every number is the single-run bootstrap's
(`harness.evals.stats`), unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.evals.stats import aggregate, aggregate_rows, bootstrap_ci, paired_bootstrap, percentile_interval, resample_index_blocks
from harness.run.results import Aggregation


@dataclass(frozen=True)
class SeededEstimate:
    value: float
    """Mean over seeds of the per-seed metric (or delta)."""
    ci_low: float
    ci_high: float
    p_value: float
    """Two-sided, against 0; meaningful for deltas."""
    seed_sd: float
    """Standard deviation between the seeds' values (0 with one seed): training randomness."""
    item_ci: tuple[float, float]
    """The interval from item resampling alone, which ignores training randomness (shown for contrast)."""
    n_seeds: int
    n_items: int


def _per_seed(aggregation: Aggregation, values: np.ndarray, weights: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Aggregate of each seed's row (optionally over resampled item columns): shape (seeds,) or (seeds, resamples)."""
    if index is None:
        return aggregate_rows(aggregation, values, weights)
    return np.stack([aggregate_rows(aggregation, v[index], w[index]) for v, w in zip(values, weights)])


def _check(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, weights = np.atleast_2d(np.asarray(values, dtype=np.float64)), np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if values.shape != weights.shape or values.size == 0:
        raise ValueError(f"values and weights must be non-empty (seeds x items) arrays of one shape, got {values.shape} and {weights.shape}")
    return values, weights


def seeded_delta(
    values_a: np.ndarray,
    weights_a: np.ndarray,
    values_b: np.ndarray,
    weights_b: np.ndarray,
    aggregation: Aggregation,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> SeededEstimate:
    """agg(a) - agg(b) per seed, averaged over seeds, with an interval over seeds and items.

    Rows are seeds, columns the same items in the same order for a and b. A reference with one row
    (base, which has no training seed) is compared with every seed of a.
    """
    values_a, weights_a = _check(values_a, weights_a)
    values_b, weights_b = _check(values_b, weights_b)
    n_seeds, n_items = values_a.shape
    if values_b.shape[1] != n_items or values_b.shape[0] not in (1, n_seeds):
        raise ValueError(f"reference shape {values_b.shape} does not pair with {values_a.shape}")
    values_b, weights_b = np.broadcast_to(values_b, values_a.shape), np.broadcast_to(weights_b, values_a.shape)
    if n_seeds == 1:
        delta, low, high, p_value = paired_bootstrap(
            values_a[0], weights_a[0], values_b[0], weights_b[0], aggregation, resamples=resamples, seed=seed, confidence=confidence
        )
        return SeededEstimate(delta, low, high, p_value, 0.0, (low, high), 1, n_items)
    per_seed = _per_seed(aggregation, values_a, weights_a) - _per_seed(aggregation, values_b, weights_b)
    replicates = np.concatenate(
        [
            (_per_seed(aggregation, values_a, weights_a, index) - _per_seed(aggregation, values_b, weights_b, index)).mean(axis=0)
            for index in resample_index_blocks(n_items, resamples, seed)
        ]
    )
    return _combine(per_seed, replicates[~np.isnan(replicates)], n_items, confidence)


def seeded_metric(
    values: np.ndarray,
    weights: np.ndarray,
    aggregation: Aggregation,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> SeededEstimate:
    """The metric per seed, averaged over seeds, with an interval over seeds and items."""
    values, weights = _check(values, weights)
    if values.shape[0] == 1:
        low, high = bootstrap_ci(values[0], weights[0], aggregation, resamples=resamples, seed=seed, confidence=confidence)
        return SeededEstimate(aggregate(aggregation, values[0], weights[0]), low, high, math.nan, 0.0, (low, high), 1, values.shape[1])
    per_seed = _per_seed(aggregation, values, weights)
    replicates = np.concatenate(
        [_per_seed(aggregation, values, weights, index).mean(axis=0) for index in resample_index_blocks(values.shape[1], resamples, seed)]
    )
    return _combine(per_seed, replicates[~np.isnan(replicates)], values.shape[1], confidence)


def _combine(per_seed: np.ndarray, replicates: np.ndarray, n_items: int, confidence: float) -> SeededEstimate:
    """Item-resampling variance plus between-seed variance / seeds, each with its own quantile (see the module docstring)."""
    n_seeds = per_seed.size
    value = float(per_seed.mean())
    item_part = float(replicates.var(ddof=1)) if replicates.size > 1 else 0.0
    seed_variance = float(per_seed.var(ddof=1))
    seed_part = seed_variance / n_seeds
    item_ci = percentile_interval(replicates, confidence)
    if item_part + seed_part <= 0.0:
        return SeededEstimate(value, value, value, 1.0 if value == 0 else 0.0, 0.0, item_ci, n_seeds, n_items)
    half = _half_width(item_part, seed_part, n_seeds, 1.0 - confidence)
    p_value = _p_value(abs(value), item_part, seed_part, n_seeds)
    return SeededEstimate(value, value - half, value + half, p_value, math.sqrt(seed_variance), item_ci, n_seeds, n_items)


def _half_width(item_part: float, seed_part: float, n_seeds: int, alpha: float) -> float:
    from scipy import stats as scipy_stats

    z = scipy_stats.norm.isf(alpha / 2)
    t = scipy_stats.t.isf(alpha / 2, n_seeds - 1)
    return math.sqrt(z**2 * item_part + t**2 * seed_part)


def _p_value(distance: float, item_part: float, seed_part: float, n_seeds: int) -> float:
    """The two-sided level at which the interval just reaches 0, so p < 0.05 exactly when the 95% CI excludes 0."""
    from scipy.optimize import brentq

    if distance == 0.0:
        return 1.0
    if _half_width(item_part, seed_part, n_seeds, 1e-15) < distance:
        return 1e-15
    return float(brentq(lambda alpha: _half_width(item_part, seed_part, n_seeds, alpha) - distance, 1e-15, 1.0))
