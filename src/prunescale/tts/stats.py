"""Honest error bars: percentile bootstrap over items.

One AIME item is 3.3 accuracy points, so every accuracy we print carries a 95 % interval. The bootstrap
resamples items (the unit that was sampled from a population of problems), with a fixed seed so reports
are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of ``values`` with a percentile bootstrap interval over items."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(low), float(high)
