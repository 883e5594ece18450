"""AlphaPruning's layer quality: the power-law exponent α of a weight matrix's eigenvalue spectrum.

Eigenvalues of WᵀW (squared singular values) of a well-trained layer have a heavy tail ~ λ^(−α).
α is fitted with the Hill (maximum-likelihood) estimator over the tail λ ≥ x_min, choosing x_min to
minimise the Kolmogorov–Smirnov distance between the empirical tail and the fitted power law
(Clauset et al. 2009). A larger α means a lighter tail — a less well-trained layer — which
AlphaPruning prunes more.
"""

from __future__ import annotations

import numpy as np
import torch


def eigenvalues(weight: torch.Tensor) -> np.ndarray:
    """Squared singular values of W (the eigenvalues of WᵀW), ascending, in float64."""
    s = torch.linalg.svdvals(weight.detach().double())
    return np.sort((s**2).cpu().numpy())


def hill_alpha(eigs: np.ndarray, min_tail: int = 10) -> tuple[float, float]:
    """(α, x_min) of the power-law tail with the smallest KS distance (tails of ≥ ``min_tail`` points)."""
    x = np.sort(np.asarray(eigs, dtype=np.float64))
    x = x[x > 0]
    n = len(x)
    if n < min_tail + 1:
        raise ValueError(f"need more than {min_tail} positive eigenvalues, got {n}")
    best = (np.inf, np.nan, np.nan)
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = Σ_{j ≥ i} log x_j
    for i in range(0, n - min_tail):
        tail_n = n - i
        alpha = 1.0 + tail_n / (suffix[i] - tail_n * logs[i])
        if not np.isfinite(alpha):
            continue
        tail = x[i:]
        model_cdf = 1.0 - (tail / x[i]) ** (1.0 - alpha)
        empirical = np.arange(tail_n) / tail_n
        ks = np.max(np.abs(model_cdf - empirical))
        if ks < best[0]:
            best = (ks, alpha, x[i])
    return float(best[1]), float(best[2])
