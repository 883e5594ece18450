"""DSnoT (Zhang et al., ICLR 2024, "Dynamic Sparse No Training"): refine a pruning mask by prune-and-grow.

Training-free: for each output row i the *expected reconstruction error* of the pruned row on the mean
input is ``r_i = Σ_j (W_ij − Ŵ_ij) · E[x_j]`` (W dense, Ŵ pruned; for a plain mask the sum of ``W_ij·E[x_j]``
over the pruned weights). Each cycle, in every row whose ``|r_i|`` is still above the threshold, one pruned
weight is regrown and one kept weight is pruned, so the row's sparsity never changes:

* **grow** the pruned weight whose ``D_ij / Var[x_j]`` (``D = W ⊙ E[x]``) is the largest (when r > 0) or the
  smallest (r < 0): the one that cancels the most error per unit of input variance;
* **prune** the kept weight with the smallest Wanda score ``|W_ij|·‖X_j‖`` among those whose ``D_ij`` has
  the sign of −r (pruning it moves r towards 0), never a weight regrown in this refinement;
* ``r ← r + D_pruned − D_grown``; a row stops for good once ``|r|`` is at most the threshold, and all rows
  stop after ``cycles`` swaps.

As the reference code (zyxxmu/DSnoT, ``prune_DSnoT``): both candidate lists are sorted once and walked with
pointers from their ends (no entry is visited twice), all rows move in parallel, the threshold is compared
with the error in the reference's units — its input mean is a sum over one sequence's tokens, so its r is
ours times the tokens per calibration sequence. Which Linears are refined, the number of cycles and the
threshold are the caller's (the refinement's options, declared in :data:`prunescale.registry.REFINEMENTS`,
with the reference's defaults in :class:`prunescale.config.UnstructuredOptions`). Where we depart: a row
also stops when its next candidate no longer reduces |r| (a grow candidate that is not pruned or has the
wrong sign, a prune candidate of the wrong sign) — the reference walks on into such entries, which
happens only in tiny rows; and the variance is the pooled variance over all calibration tokens (the
reference averages per-sequence variances).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def dsnot_refine(
    values: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    importance: torch.Tensor,
    error: torch.Tensor,
    cycles: int = 50,
    threshold: float = 0.1,
    error_scale: float = 1.0,
) -> tuple[torch.Tensor, dict]:
    """Return the refined mask (True = pruned) and counts of what changed.

    ``values``: each weight's value when kept (the dense W; for SparseGPT the value its column had when
    the mask was chosen); ``mask``: the initial mask; ``mean``/``var``: E[x_j] and Var[x_j]; ``importance``:
    the pruning order of kept weights (Wanda's ``|W|·‖X‖``); ``error``: each row's initial ``r_i``;
    ``error_scale``: factor from our r to the units ``threshold`` is in (tokens per calibration sequence).
    """
    values, mean, var = values.float(), mean.float().to(values.device), var.float().to(values.device)
    mask = mask.clone()
    rows, cols = mask.shape
    D = values * mean.unsqueeze(0)
    r = error.float().clone().to(values.device)
    arange = torch.arange(rows, device=values.device)

    # grow list: pruned entries by D/Var ascending (kept entries sit at 0 in the middle, as in the reference)
    grow_key = torch.where(mask, D / var.clamp_min(1e-12).unsqueeze(0), torch.zeros_like(D))
    grow_order = torch.argsort(grow_key, dim=1, stable=True)
    # prune list: kept entries, negative D first by ascending importance, then positive D by descending
    # importance, so each end holds the least important kept weight of its sign; pruned entries between
    imp = importance.float().to(values.device)
    rank = torch.argsort(torch.argsort(imp, dim=1, stable=True), dim=1)  # 0 = least important of its row
    key = torch.where(~mask & (D < 0), rank - 2 * cols, torch.where(~mask, 2 * cols - rank, torch.zeros_like(rank)))
    prune_order = torch.argsort(key, dim=1, stable=True)

    lo_g = torch.zeros(rows, dtype=torch.long, device=values.device)
    hi_g = torch.full((rows,), cols - 1, dtype=torch.long, device=values.device)
    lo_p, hi_p = lo_g.clone(), hi_g.clone()
    active = torch.ones(rows, dtype=torch.bool, device=values.device)
    swaps = 0
    for _ in range(cycles):
        active &= (r * error_scale).abs() > threshold
        if not bool(active.any()):
            break
        pos = r > 0
        g = torch.where(pos, grow_order[arange, hi_g], grow_order[arange, lo_g])
        p = torch.where(pos, prune_order[arange, lo_p], prune_order[arange, hi_p])
        dg, dp = D[arange, g], D[arange, p]
        useful = (mask[arange, g] & ~mask[arange, p] & torch.where(pos, (dg > 0) & (dp < 0), (dg < 0) & (dp > 0))
                  & (lo_g <= hi_g) & (lo_p <= hi_p))
        active &= useful
        rows_now = arange[active]
        if rows_now.numel() == 0:
            break
        mask[rows_now, g[active]] = False
        mask[rows_now, p[active]] = True
        r[active] += dp[active] - dg[active]
        swaps += int(active.sum())
        step = active.long()
        hi_g -= step * pos.long()
        lo_g += step * (~pos).long()
        lo_p += step * pos.long()
        hi_p -= step * (~pos).long()
    return mask, {"swaps": swaps, "rows_still_above": int(((r * error_scale).abs() > threshold).sum())}
