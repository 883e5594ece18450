"""ATP (Huang et al., ICML 2025): block sparsities in an arithmetic progression that rises with depth.

"Determining Layer-wise Sparsity for LLMs Through a Theoretical Perspective" shows that reconstruction
errors accumulate through the depth of a pruned model ("reconstruction error explosion") and that a
sparsity increasing linearly with depth keeps them in check. Block ℓ (0-based, L blocks) gets
``s_ℓ = S + β · (ℓ − c)``, with c the parameter-weighted mean block index, so the parameter-weighted mean
is S exactly; one knob, the common difference β (β = 0 is uniform). A β that takes any block outside
[0, 0.99] is an error (naming the largest β that fits), never a silent clip that would move the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

from prunescale.errors import PrunescaleError
from prunescale.prune.allocation.allocate import MAX_SPARSITY


def atp_sparsities(target: float, beta: float, weights: Sequence[float]) -> list[float]:
    """Per-block sparsity ``S + β (ℓ − c)`` (c: the weighted mean of ℓ), increasing with depth."""
    n = len(weights)
    centre = sum(i * w for i, w in enumerate(weights)) / sum(weights)
    out = [target + beta * (i - centre) for i in range(n)]
    if n > 1 and (min(out) < 0 or max(out) > MAX_SPARSITY):
        room = min(target / centre if centre > 0 else float("inf"),
                   (MAX_SPARSITY - target) / max(1e-12, n - 1 - centre))
        raise PrunescaleError(f"ATP: β={beta} takes block sparsities outside [0, {MAX_SPARSITY}] at S={target} "
                              f"with {n} blocks; use β ≤ {room:.4f}")
    return out
