"""Multiple comparisons: Holm's step-down adjustment over one table's family of p-values."""

from __future__ import annotations

from collections.abc import Sequence


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (NaNs are left out of the family and stay NaN).

    Sorted ascending, the i-th smallest of m is multiplied by (m − i + 1), the running maximum keeps
    the order, and values are capped at 1 (Holm 1979). Controls the family-wise error rate.
    """
    valid = [(p, i) for i, p in enumerate(pvalues) if p == p]
    m = len(valid)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
