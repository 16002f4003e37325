"""Intervals over seeds x items: checked by simulation against a known truth, and equal to the single-run numbers at one seed.

Synthetic per-item scores follow a crossed random-effects model, y[s, i] = mu + seed effect + item
effect + noise: the effect a reader wants is mu, the mean over the population of seeds and items.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.evals.seed_stats import seeded_delta, seeded_metric
from harness.evals.stats import bootstrap_ci, paired_bootstrap

EXPERIMENTS = 1000
SEEDS, ITEMS = 3, 40
TRUE_EFFECT = 0.5


def simulate(rng: np.random.Generator, seed_sd: float, item_sd: float = 0.5, noise_sd: float = 0.3) -> np.ndarray:
    seeds = rng.normal(0, seed_sd, size=(SEEDS, 1))
    items = rng.normal(0, item_sd, size=(1, ITEMS))
    return TRUE_EFFECT + seeds + items + rng.normal(0, noise_sd, size=(SEEDS, ITEMS))


def coverage(seed_sd: float) -> tuple[float, float]:
    """(share of seed x item intervals covering the truth, share of item-only intervals covering it)."""
    rng = np.random.default_rng(20261130)
    covered = item_only = 0
    for experiment in range(EXPERIMENTS):
        deltas = simulate(rng, seed_sd)
        estimate = seeded_delta(deltas, np.ones_like(deltas), np.zeros((1, ITEMS)), np.ones((1, ITEMS)), "mean",
                                resamples=200, seed=experiment)
        covered += estimate.ci_low <= TRUE_EFFECT <= estimate.ci_high
        item_only += estimate.item_ci[0] <= TRUE_EFFECT <= estimate.item_ci[1]
    return covered / EXPERIMENTS, item_only / EXPERIMENTS


def test_the_seed_and_item_interval_covers_the_true_effect_at_the_nominal_rate():
    covered, item_only = coverage(seed_sd=0.3)
    assert 0.93 <= covered <= 0.97, covered
    assert item_only < 0.80, f"item-only intervals should visibly under-cover when seeds vary this much, got {item_only}"


def test_without_seed_variance_both_intervals_cover():
    covered, item_only = coverage(seed_sd=0.0)
    assert 0.93 <= covered <= 0.99, covered
    assert item_only >= 0.88, item_only


def test_one_seed_gives_the_single_run_numbers():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 1, size=(1, 30)), rng.normal(0.8, 1, size=(1, 30))
    ones = np.ones_like(a)
    delta = seeded_delta(a, ones, b, ones, "mean", resamples=500, seed=7)
    assert (delta.value, delta.ci_low, delta.ci_high, delta.p_value) == paired_bootstrap(a[0], ones[0], b[0], ones[0], "mean", resamples=500, seed=7)
    assert delta.seed_sd == 0.0 and delta.n_seeds == 1
    metric = seeded_metric(a, ones, "mean", resamples=500, seed=7)
    assert (metric.ci_low, metric.ci_high) == bootstrap_ci(a[0], ones[0], "mean", resamples=500, seed=7)


def test_ratio_metrics_and_the_seed_spread():
    rng = np.random.default_rng(5)
    nll = rng.uniform(1, 3, size=(4, 25)) * 10
    tokens = np.full((4, 25), 10.0)
    nll[2] += 5.0
    estimate = seeded_metric(nll, tokens, "exp_ratio", resamples=300, seed=0)
    per_seed = np.exp(nll.sum(axis=1) / tokens.sum(axis=1))
    assert estimate.value == pytest.approx(per_seed.mean())
    assert estimate.seed_sd == pytest.approx(per_seed.std(ddof=1))
    assert estimate.ci_low < estimate.value < estimate.ci_high
    assert estimate.ci_high - estimate.ci_low > estimate.item_ci[1] - estimate.item_ci[0]


def test_the_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.05, 0.15, 0.3, 1.0):
        deltas = shift + rng.normal(0, 0.2, size=(3, 1)) + rng.normal(0, 0.5, size=(3, 30))
        estimate = seeded_delta(deltas, np.ones_like(deltas), np.zeros((1, 30)), np.ones((1, 30)), "mean", resamples=300)
        excludes_zero = estimate.ci_low > 0 or estimate.ci_high < 0
        assert (estimate.p_value < 0.05) == excludes_zero, (shift, estimate)
