import math
import time

import numpy as np
import pytest

from harness.evals.stats import aggregate, bootstrap_ci, mcnemar_exact, paired_bootstrap


def ones(n: int) -> np.ndarray:
    return np.ones(n)


def test_aggregations_by_hand():
    assert aggregate("mean", np.array([1.0, 2.0, 3.0]), ones(3)) == pytest.approx(2.0)
    assert aggregate("sum", np.array([1.0, 2.0, 3.0]), ones(3)) == pytest.approx(6.0)
    assert aggregate("ratio", np.array([2.0, 4.0]), np.array([1.0, 3.0])) == pytest.approx(1.5)
    # negative log-likelihood 6 nats over 3 tokens -> perplexity e^2
    assert aggregate("exp_ratio", np.array([2.0, 4.0]), np.array([1.0, 2.0])) == pytest.approx(math.exp(2.0))


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        aggregate("mean", np.array([]), np.array([]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]), np.array([]), "mean")
    with pytest.raises(ValueError):
        aggregate("ratio", np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError):
        aggregate("mean", np.array([1.0, 2.0]), ones(3))
    with pytest.raises(ValueError):
        aggregate("median", np.array([1.0]), ones(1))  # type: ignore[arg-type]


def test_single_item_ci_is_the_value():
    low, high = bootstrap_ci(np.array([0.7]), ones(1), "mean")
    assert low == high == pytest.approx(0.7)


def test_all_equal_items_give_zero_width_ci():
    low, high = bootstrap_ci(np.full(50, 3.25), ones(50), "mean")
    assert low == high == pytest.approx(3.25)


def test_ci_contains_value_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    small = rng.normal(5.0, 2.0, size=40)
    large = rng.normal(5.0, 2.0, size=4000)
    low_s, high_s = bootstrap_ci(small, ones(small.size), "mean", seed=3)
    low_l, high_l = bootstrap_ci(large, ones(large.size), "mean", seed=3)
    assert low_s <= small.mean() <= high_s
    assert low_l <= large.mean() <= high_l
    assert (high_l - low_l) < (high_s - low_s) / 5


def test_ratio_ci_resamples_items_not_tokens():
    nll = np.array([10.0, 40.0, 20.0, 90.0, 15.0])
    tokens = np.array([5.0, 10.0, 10.0, 30.0, 5.0])
    value = aggregate("exp_ratio", nll, tokens)
    low, high = bootstrap_ci(nll, tokens, "exp_ratio", resamples=2000)
    assert low < value < high
    assert low >= math.exp(min(nll / tokens)) and high <= math.exp(max(nll / tokens))


def test_bootstrap_is_seeded():
    values = np.random.default_rng(0).random(100)
    assert bootstrap_ci(values, ones(100), "mean", seed=5) == bootstrap_ci(values, ones(100), "mean", seed=5)
    assert bootstrap_ci(values, ones(100), "mean", seed=5) != bootstrap_ci(values, ones(100), "mean", seed=6)


def test_bootstrap_is_fast_for_10k_items():
    values = np.random.default_rng(0).random(10_000)
    started = time.perf_counter()
    bootstrap_ci(values, ones(values.size), "ratio", resamples=1000)
    assert time.perf_counter() - started < 10.0


def test_paired_consistent_shift_is_significant():
    rng = np.random.default_rng(2)
    b = rng.normal(0.0, 1.0, size=200)
    a = b + 0.3 + rng.normal(0.0, 0.05, size=200)
    delta, low, high, p = paired_bootstrap(a, ones(200), b, ones(200), "mean", resamples=1000, seed=0)
    assert delta == pytest.approx(a.mean() - b.mean())
    assert 0.0 < low <= delta <= high
    assert p <= 2 / 1001 + 1e-12


def test_paired_noise_is_not_significant():
    rng = np.random.default_rng(4)
    base = rng.normal(0.0, 1.0, size=300)
    a = base + rng.normal(0.0, 1.0, size=300)
    b = base + rng.normal(0.0, 1.0, size=300)
    a = a - a.mean() + b.mean()
    _, low, high, p = paired_bootstrap(a, ones(300), b, ones(300), "mean", resamples=1000, seed=0)
    assert low < 0.0 < high
    assert p > 0.5


def test_paired_pairing_beats_independent_noise():
    rng = np.random.default_rng(5)
    item_difficulty = rng.normal(0.0, 5.0, size=100)
    a = item_difficulty + 0.2
    b = item_difficulty.copy()
    _, low, high, p = paired_bootstrap(a, ones(100), b, ones(100), "mean", resamples=500, seed=0)
    assert high - low < 1e-9 and p < 0.01


def test_paired_identical_arms_give_p_one():
    values = np.random.default_rng(6).random(30)
    delta, low, high, p = paired_bootstrap(values, ones(30), values, ones(30), "mean", resamples=200)
    assert delta == low == high == 0.0
    assert p == 1.0


def test_paired_exp_ratio_with_weights():
    tokens = np.array([10.0, 20.0, 30.0, 40.0])
    nll_b = tokens * 2.0
    nll_a = tokens * 1.5
    delta, low, high, p = paired_bootstrap(nll_a, tokens, nll_b, tokens, "exp_ratio", resamples=300)
    assert delta == pytest.approx(math.exp(1.5) - math.exp(2.0))
    assert low == pytest.approx(delta) and high == pytest.approx(delta)
    assert p < 0.01


def test_paired_length_mismatch_raises():
    with pytest.raises(ValueError):
        paired_bootstrap(ones(3), ones(3), ones(4), ones(4), "mean")


def test_mcnemar_known_values():
    all_one_way = mcnemar_exact(np.ones(10, dtype=bool), np.zeros(10, dtype=bool))
    assert all_one_way == pytest.approx(2 * 0.5**10)
    # 3 discordant one way, 1 the other: 2 * P(X <= 1 | n=4) = 2 * 5/16
    a = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 1, 1, 0], dtype=bool)
    assert mcnemar_exact(a, b) == pytest.approx(2 * 5 / 16)
    assert mcnemar_exact(a, b) == mcnemar_exact(b, a)


def test_mcnemar_no_discordant_pairs_and_balance_give_one():
    same = np.array([1, 0, 1, 1], dtype=bool)
    assert mcnemar_exact(same, same) == 1.0
    assert mcnemar_exact(np.array([1, 0], dtype=bool), np.array([0, 1], dtype=bool)) == 1.0


def test_mcnemar_large_counts_do_not_overflow():
    a = np.zeros(3000, dtype=bool)
    b = np.zeros(3000, dtype=bool)
    a[:1200] = True
    b[1200:2000] = True
    p = mcnemar_exact(a, b)
    assert 0.0 <= p < 1e-10


def test_mcnemar_empty_raises():
    with pytest.raises(ValueError):
        mcnemar_exact(np.array([], dtype=bool), np.array([], dtype=bool))
