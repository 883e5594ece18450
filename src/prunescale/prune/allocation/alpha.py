"""AlphaPruning's layer quality: the power-law exponent α of a weight matrix's eigenvalue spectrum.

Eigenvalues of WᵀW (squared singular values) of a well-trained layer have a heavy tail ~ λ^(−α), and
α = 1 + n / Σ_{λ_j ≥ x_min} ln(λ_j / x_min) (Hill's maximum-likelihood estimator, n tail eigenvalues).
A larger α means a lighter tail — a less well-trained layer — which AlphaPruning prunes more.

x_min is chosen as the reference implementation (haiquanlu/AlphaPruning, ``net_esd_estimator`` with
``fix_fingers='xmin_peak'``, its default ``alpha_peak`` metric) chooses it: the peak of the empirical
spectral density — the left edge of the fullest of 100 equal bins of log10 λ — then, among candidate
x_min from the window the reference code sets around that peak, the one whose fit (with α > 1) has the
smallest Kolmogorov–Smirnov distance. The window's upper end is 1.5 × peak; its lower end is written in
that code as log10(0.95 × peak) and compared with eigenvalues themselves (not their logarithms), which we
keep, so α is what the reference computes: in practice the candidates reach down to the smallest
eigenvalues whenever the peak is below ≈ 1.05. ``rule="scan"`` searches every tail (Clauset et al. 2009),
the estimator prunescale used before.
"""

from __future__ import annotations

import numpy as np
import torch


def eigenvalues(weight: torch.Tensor) -> np.ndarray:
    """Squared singular values of W (the eigenvalues of WᵀW), ascending, in float64."""
    s = torch.linalg.svdvals(weight.detach().double())
    return np.sort((s**2).cpu().numpy())


def _fit(x: np.ndarray, logs: np.ndarray, i: int) -> tuple[float, float]:
    """(α, KS distance) of the power law fitted to the tail x[i:] (KS 1 when α ≤ 1, as the reference)."""
    n = len(x) - i
    alpha = 1.0 + n / (logs[i:].sum() - n * logs[i])
    if not np.isfinite(alpha) or alpha <= 1:
        return float(alpha), 1.0
    model_cdf = 1.0 - (x[i:] / x[i]) ** (1.0 - alpha)
    return float(alpha), float(np.max(np.abs(model_cdf - np.arange(n) / n)))


def esd_peak(x: np.ndarray, bins: int = 100) -> float:
    """The left edge of the fullest of ``bins`` equal bins of log10 λ (the reference's ``xmin2``)."""
    logs10 = np.log10(x)
    counts, edges = np.histogram(logs10, bins=bins, range=(logs10.min(), logs10.max()))
    return float(10 ** edges[int(np.argmax(counts))])


def hill_alpha(eigs: np.ndarray, rule: str = "peak", min_tail: int = 10) -> tuple[float, float]:
    """(α, x_min): ``peak`` as the AlphaPruning reference code chooses x_min (the module docstring), or
    ``scan``, the smallest KS distance over every tail of ≥ ``min_tail`` points."""
    x = np.sort(np.asarray(eigs, dtype=np.float64))
    x = x[x > 0]
    n = len(x)
    if n < min_tail + 1:
        raise ValueError(f"need more than {min_tail} positive eigenvalues, got {n}")
    logs = np.log(x)
    if rule == "peak":
        peak = esd_peak(x)
        low, high = np.log10(0.95 * peak), 1.5 * peak  # the reference's bounds, as written there
        candidates = [i for i in range(n - 1) if low <= x[i] <= high]
    elif rule == "scan":
        candidates = list(range(n - min_tail))
    else:
        raise ValueError(f"unknown x_min rule {rule!r}; use peak or scan")
    if not candidates:  # a spectrum so wide that no eigenvalue lies near its peak bin
        raise ValueError(f"no eigenvalue within the x_min window around the spectral peak ({n} eigenvalues from "
                         f"{x[0]:.3g} to {x[-1]:.3g})")
    best = (np.inf, np.nan, np.nan)
    for i in candidates:
        alpha, ks = _fit(x, logs, i)
        if ks < best[0]:
            best = (ks, alpha, x[i])
    return float(best[1]), float(best[2])
