"""Paired comparisons of two variants on the same items (per-item accuracies averaged over seeds and
samples): the mean difference, its t interval over items, and a two-sided sign-flip permutation p-value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from prunescale.stats.intervals import LEVEL


def t_quantile(q: float, df: int) -> float:
    """Student's t quantile by the Cornish–Fisher expansion around the normal (Abramowitz & Stegun
    26.7.5): within 1e-3 of the exact value for df ≥ 5, which is all a paired interval over items needs."""
    z = NormalDist().inv_cdf(q)
    if df <= 0:
        return float("nan")
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@dataclass(frozen=True)
class Difference:
    delta: float  # mean of a − b over the common items
    low: float
    high: float
    p: float  # two-sided sign-flip permutation p-value (H0: the differences are symmetric about 0)
    items: int


def differences(a: Mapping[str, float], b: Mapping[str, float]) -> np.ndarray:
    items = sorted(set(a) & set(b))
    return np.array([a[i] - b[i] for i in items], dtype=float)


def sign_flip_p(d: np.ndarray, n_perm: int = 10000, seed: int = 0) -> float:
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs((signs * d).mean(axis=1))
    return float((1 + (null >= observed - 1e-12).sum()) / (n_perm + 1))


def paired(a: Mapping[str, float], b: Mapping[str, float], level: float = LEVEL) -> Difference:
    """a − b on the items both have (item id → accuracy of that item)."""
    d = differences(a, b)
    n = d.size
    if n == 0:
        return Difference(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(d.mean())
    if n < 2:
        return Difference(mean, float("nan"), float("nan"), sign_flip_p(d), n)
    half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / np.sqrt(n)
    return Difference(mean, mean - half, mean + half, sign_flip_p(d), n)
