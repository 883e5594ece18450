"""The sparsity audit: what pruning did, measured from the weights, checked against what was asked.

Every pruning run ends here; a result that misses the request (per module beyond ±0.5 %, globally, or an
N:M pattern with too many weights in a group — in the permuted channel order where the method chose
one) is an error, never a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import prunable_linears

TOLERANCE = 0.005


def realised_sparsity(model: nn.Module) -> dict[str, dict]:
    """Per prunable module: parameter count and fraction of exactly-zero weights."""
    out = {}
    for name, lin in prunable_linears(model).items():
        w = lin.weight
        out[name] = {"params": w.numel(), "zeros": int((w == 0).sum()), "sparsity": float((w == 0).sum()) / w.numel()}
    return out


def global_sparsity(per_module: Mapping[str, Mapping]) -> float:
    """Parameter-weighted sparsity over all prunable modules."""
    total = sum(m["params"] for m in per_module.values())
    return sum(m["zeros"] for m in per_module.values()) / max(1, total)


def check_realised(model: nn.Module, pattern, tol: float = TOLERANCE) -> dict:
    """Measure what pruning did and refuse results that miss the request (per module and globally)."""
    per = realised_sparsity(model)
    bad = []
    for name, m in per.items():
        want = pattern.target(name)
        m["target"] = want
        if pattern.nm:
            n, m_ = pattern.nm
            w = prunable_linears(model)[name].weight
            perm = getattr(pattern, "permutations", {}).get(name)
            kept = ((w if perm is None else w[:, perm.to(w.device)]) != 0).reshape(-1, m_).sum(-1)
            if bool((kept > n).any()):  # extra zeros (dead inputs) are fine, extra weights are not
                bad.append(f"{name}: not a valid {n}:{m_} pattern")
        elif abs(m["sparsity"] - want) > tol:
            bad.append(f"{name}: realised {m['sparsity']:.4f} vs target {want:.4f}")
    realised = global_sparsity(per)
    total = sum(m["params"] for m in per.values())
    target = sum(pattern.target(n) * m["params"] for n, m in per.items()) / max(1, total)
    if not pattern.nm and abs(realised - target) > tol:
        bad.append(f"global: realised {realised:.4f} vs target {target:.4f}")
    if bad:
        raise PrunescaleError(f"realised sparsity misses the request ({len(bad)} problems, first: {bad[0]})")
    return {"target_global": target, "realised_global": realised, "per_module": per}
