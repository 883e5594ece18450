"""DLP (ICML 2025, "Dynamic Layerwise Pruning in Large Language Models"): block importance from the
typical size of its weight-activation scores, no outlier threshold to tune.

For block ℓ, s_ℓ is the median of the Wanda scores ``|W_ij|·‖X_j‖`` of all its Linears together, measured
on the dense model — the paper reads it as the block's *unimportance*: blocks whose typical score is
large are pruned more. With u_ℓ = (s_ℓ − min s)/(max s − min s) ∈ [0, 1], the block sparsity is
``S + 2α (u_ℓ − ū)`` (ū the parameter-weighted mean of u): a span exactly 2α wide, mean S. The reference
code (ironartisan/DLP, ``get_dlp_ratios``) writes the same map through keep ratios, defaults α = 0.15,
and takes the *mean* of the scores where the paper says median (its ``--strategy median`` flag is not
read there); we follow the paper. Sparsities outside [0, 0.99] are an error (the reference clips ≤ 0 to
0.01 and moves the mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prunescale.errors import PrunescaleError
from prunescale.prune.allocation.allocate import MAX_SPARSITY


def median_score(scores: Sequence[torch.Tensor]) -> float:
    """Median of the concatenated scores (the lower middle value for an even count, as torch.median)."""
    return float(torch.cat([s.flatten().float() for s in scores]).median())


def dlp_sparsities(block_scores: Sequence[float], target: float, alpha: float, weights: Sequence[float]) -> list[float]:
    """Per-block sparsity ``S + 2α (u_ℓ − ū)``: a larger score (less important) prunes more."""
    lo, hi = min(block_scores), max(block_scores)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return [target] * len(block_scores)
    u = [(s - lo) / (hi - lo) for s in block_scores]
    mean_u = sum(x * w for x, w in zip(u, weights)) / sum(weights)
    out = [target + 2 * alpha * (x - mean_u) for x in u]
    if min(out) < 0 or max(out) > MAX_SPARSITY:
        raise PrunescaleError(f"DLP: α={alpha} takes block sparsities outside [0, {MAX_SPARSITY}] at S={target}: "
                              "lower α")
    return out
