"""OWL (Yin et al. 2024): blocks with more activation outliers are pruned less.

For block ℓ, D_ℓ is the fraction of its Wanda scores (|W_ij|·‖X_j‖ over all its Linears together) that
exceed M × their mean. Normalised r_ℓ = (D_ℓ − min D)/(max D − min D) · 2λ ∈ [0, 2λ], and
sparsity_ℓ = S − (r_ℓ − r̄), r̄ the parameter-weighted mean of r: more outliers → less pruning. The
sparsities span a range 2λ wide that contains S, so they lie in [S − 2λ, S + 2λ] — S ± λ only when r̄ is
λ (outlier ratios spread evenly), not in general.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prunescale.errors import PrunescaleError


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Fraction of the concatenated scores greater than ``m`` × their mean."""
    # summed matrix by matrix (float64 totals): a concatenated copy of a 7-8B block's scores is another GB
    total = sum(float(s.sum(dtype=torch.float64)) for s in scores)
    count = sum(s.numel() for s in scores)
    threshold = m * total / count
    return sum(int((s > threshold).sum()) for s in scores) / count


def owl_sparsities(ratios: Sequence[float], target: float, lam: float, weights: Sequence[float]) -> list[float]:
    """Per-block sparsity from outlier ratios D_ℓ, centred on ``target`` (parameter-weighted)."""
    if lam <= 0:
        raise PrunescaleError(f"OWL λ must be > 0, got {lam}")
    if lam >= target or target + lam >= 1:
        raise PrunescaleError(f"OWL needs λ < S and S + λ < 1 (got S={target}, λ={lam})")
    lo, hi = min(ratios), max(ratios)
    if hi - lo <= 1e-12:
        return [target] * len(ratios)
    r = [(d - lo) / (hi - lo) * 2 * lam for d in ratios]
    mean_r = sum(x * w for x, w in zip(r, weights)) / sum(weights)
    return [target - (x - mean_r) for x in r]
