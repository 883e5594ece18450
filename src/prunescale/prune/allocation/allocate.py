"""From one score per block to one sparsity per module, with the guarantees every allocation keeps.

Guarantees (tested): the parameter-weighted mean of the result equals the target S (within 0.5 %,
after clipping to [0, 0.99]); equal scores give the uniform allocation; the direction is documented per
map. A result that breaks them is an error, never a silent approximation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prunescale.errors import PrunescaleError

MAX_SPARSITY = 0.99
TOLERANCE = 0.005


def weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    return sum(v * w for v, w in zip(values, weights)) / sum(weights)


def rescale_to_mean(ratios: Sequence[float], weights: Sequence[float], target: float) -> list[float]:
    """``clip(c · ratio)`` with the scalar c chosen by bisection so the weighted mean is ``target``."""
    if target == 0:
        return [0.0] * len(ratios)
    lo, hi = 0.0, 1.0
    clipped = lambda c: [min(MAX_SPARSITY, max(0.0, c * r)) for r in ratios]  # noqa: E731
    while weighted_mean(clipped(hi), weights) < target:
        hi *= 2
        if hi > 1e6:
            raise PrunescaleError(f"cannot reach mean sparsity {target} with values capped at {MAX_SPARSITY}")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if weighted_mean(clipped(mid), weights) < target else (lo, mid)
    return clipped(hi)


def linear_ratios(scores: Sequence[float], epsilon: float, higher_prunes_more: bool = True) -> list[float]:
    """Map scores linearly onto [1 − ε, 1 + ε] (AlphaPruning / LayerIF); equal scores → all 1."""
    lo, hi = min(scores), max(scores)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return [1.0] * len(scores)
    unit = [(s - lo) / (hi - lo) for s in scores]
    if not higher_prunes_more:
        unit = [1 - u for u in unit]
    return [(1 - epsilon) + u * 2 * epsilon for u in unit]


def blocks_to_modules(per_block: Sequence[float], modules: Mapping[str, int]) -> dict[str, float]:
    """Give every module its block's sparsity (``modules``: module name → block index)."""
    return {name: float(per_block[block]) for name, block in modules.items()}


def check_allocation(sparsity: Mapping[str, float], params: Mapping[str, int], target: float) -> float:
    """Raise unless every value is in [0, 0.99] and the parameter-weighted mean is ``target``."""
    bad = [n for n, s in sparsity.items() if not 0 <= s <= MAX_SPARSITY]
    if bad:
        raise PrunescaleError(f"allocation gives {bad[0]} sparsity {sparsity[bad[0]]}, outside [0, {MAX_SPARSITY}]")
    missing = [n for n in params if n not in sparsity]
    if missing:
        raise PrunescaleError(f"allocation has no sparsity for {missing[0]} ({len(missing)} modules missing)")
    mean = sum(sparsity[n] * params[n] for n in params) / sum(params.values())
    if abs(mean - target) > TOLERANCE:
        raise PrunescaleError(f"allocation mean sparsity {mean:.4f} differs from the target {target:.4f}")
    return mean
