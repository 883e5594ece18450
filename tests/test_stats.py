"""The statistics behind every reported number, against textbook values and simulated coverage."""

from __future__ import annotations

import numpy as np
import pytest

from prunescale.stats.intervals import accuracy, wilson
from prunescale.stats.multiple import holm
from prunescale.stats.paired import paired, t_quantile
from prunescale.stats.power import minimum_detectable_difference


@pytest.mark.parametrize("p, n, low, high", [
    (0.0, 10, 0.0, 0.2775),  # Wilson (1927) / Newcombe (1998) table values at 95 %
    (1.0, 10, 0.7225, 1.0),
    (0.5, 10, 0.2366, 0.7634),
    (0.2, 50, 0.1124, 0.3304),
    (1.0, 300, 0.9874, 1.0),  # 100 % on 300 items is not [100, 100]
])
def test_wilson_textbook_values(p, n, low, high):
    assert wilson(p, n) == pytest.approx((low, high), abs=5e-4)


def test_one_observation_per_item_is_exactly_wilson_on_the_items():
    rng = np.random.default_rng(1)
    y = (rng.random(40) < 0.3).astype(float)
    est = accuracy([[v] for v in y])
    assert est.n_eff == pytest.approx(40)
    assert (est.low, est.high) == pytest.approx(wilson(y.mean(), 40))


def test_boundaries_keep_a_width_and_seeds_count_only_as_far_as_they_vary():
    assert accuracy([[1.0, 1.0, 1.0]] * 300).low == pytest.approx(wilson(1.0, 300)[0])  # clusters, not 900
    same = accuracy([[1, 1, 1], [0, 0, 0]] * 50)  # seeds repeat each item's outcome: no more than 100 items
    independent = accuracy([[1, 0, 1], [0, 1, 0]] * 50)  # seeds vary within items: more information
    assert same.n_eff == pytest.approx(100) and independent.n_eff > 200


@pytest.mark.parametrize("a, b, n, m", [(2, 2, 100, 3), (0.5, 0.5, 100, 3), (8, 1, 30, 3), (30, 1, 300, 1),
                                        (0.3, 3, 50, 2), (1, 1, 30, 5)])
def test_simulated_coverage_is_nominal(a, b, n, m):
    """Items of Beta(a, b)-distributed difficulty, m seeds each: the 95 % interval covers the population
    accuracy in 95 ± 2 % of 2000 simulated runs (here 94.1–95.8 % across these designs)."""
    rng = np.random.default_rng(7)
    truth, hits, runs = a / (a + b), 0, 2000
    for _ in range(runs):
        difficulty = rng.beta(a, b, n)
        y = (rng.random((n, m)) < difficulty[:, None]).astype(float)
        est = accuracy(list(y))
        hits += est.low <= truth <= est.high
    assert abs(hits / runs - 0.95) <= 0.02


def test_holm_textbook_example():
    # Holm (1979) step-down on five p-values: sorted 0.01, 0.02, 0.03, 0.04, 0.05 × 5, 4, 3, 2, 1 = 0.05, 0.08,
    # 0.09, 0.08, 0.05, then the running maximum: 0.05, 0.08, 0.09, 0.09, 0.09
    assert holm([0.04, 0.01, 0.05, 0.02, 0.03]) == pytest.approx([0.09, 0.05, 0.09, 0.08, 0.09])
    assert holm([0.001, 0.5, float("nan")])[:2] == pytest.approx([0.002, 0.5])
    assert holm([0.3, 0.4]) == pytest.approx([0.6, 0.6])  # monotone and capped
    assert holm([0.9, 0.8]) == [1.0, 1.0]


@pytest.mark.parametrize("df, value", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706),
                                       (10, 2.2281), (29, 2.0452), (100, 1.9840)])
def test_t_quantiles(df, value):  # the textbook table, few degrees of freedom included
    assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)


def test_paired_difference_and_permutation():
    a = {f"i{k}": 1.0 for k in range(30)}
    b = {f"i{k}": float(k % 2) for k in range(30)}
    d = paired(a, b)
    assert d.delta == pytest.approx(0.5) and d.items == 30 and d.low < 0.5 < d.high and d.p < 0.001
    same = paired(a, a)
    assert (same.delta, same.p) == (0.0, 1.0)
    assert (same.low, same.high) == pytest.approx((-0.1, 0.1))  # no item differs: 3 of 30 still may


def test_one_item_is_one_observation_however_many_seeds():
    est = accuracy([[1.0, 0.0, 1.0]])
    assert est.n_eff == 1 and (est.low, est.high) == pytest.approx(wilson(2 / 3, 1))


def test_thirty_items_cannot_show_three_points():
    mdd = minimum_detectable_difference(0.5, 30)
    assert mdd == pytest.approx(0.3617, abs=1e-3) and mdd > 0.03
    assert minimum_detectable_difference(1.0, 300) > 0  # a perfect dense model still leaves room to lose
