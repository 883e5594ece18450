"""RIA (Zhang et al., ICLR 2024, "Plug-and-Play"): relative importance and activations.

Score of weight W_ij (row i = output, column j = input feature):
``(|W_ij| / Σ_k |W_ik| + |W_ij| / Σ_k |W_kj|) · ‖X_j‖₂^a`` — its share of its row's plus its share of its
column's absolute weight, times the input norm to the power a (0.5 in the paper). A weight that matters
to its output *or* to its input channel survives, which keeps whole channels from being wiped out. We
select per output row as Wanda does (the reference code's default is one threshold per matrix; its
``--per_outneuron`` is our choice); the per-feature norm is the same up to a constant (1/√N), which no
selection within a matrix sees.

Channel permutation for N:M (``permute=True``): the mask is chosen on a permutation of the input
channels in which each group of M holds channels of different importance, so fewer important weights
compete inside one group. As the reference code (``--reallocation --lsa``): channels sorted by their
summed score are dealt into the groups in a snake order (chunk k of M takes every M-th position,
reversed for even k), then for each of the M slots a linear sum assignment (scipy) re-deals that slot's
channels among the groups to maximise the score the N:M groups keep. The mask is mapped back to the
original order: it is N:M along the permuted channel order (a runtime that permutes the activations
once, or folds the permutation into the previous layer, gets the N:M speed-up); the audit checks it there.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


def ria_scores(weight: torch.Tensor, input_norms: torch.Tensor, a: float = 0.5) -> torch.Tensor:
    """Relative importance × ‖X_j‖^a (fp32, the shape of ``weight``)."""
    w = weight.detach().abs().float()
    tiny = torch.finfo(torch.float32).tiny  # an all-zero row or column scores 0, not NaN
    relative = w / w.sum(1, keepdim=True).clamp_min(tiny) + w / w.sum(0, keepdim=True).clamp_min(tiny)
    return relative * input_norms.to(w.device).float().pow(a).unsqueeze(0)


def kept_score(scores: torch.Tensor, n: int, m: int) -> float:
    """Total score an N:M mask keeps on ``scores`` (groups of ``m`` consecutive columns)."""
    rows, cols = scores.shape
    return float(scores.reshape(rows, cols // m, m).topk(n, dim=-1).values.sum())


def snake_order(scores: torch.Tensor, m: int) -> torch.Tensor:
    """The reference's heuristic reallocation: permuted position → original channel."""
    cols = scores.shape[1]
    ascending = torch.argsort(scores.sum(0), stable=True)
    size = cols // m
    index = torch.empty(cols, dtype=torch.long)
    for k in range(m):
        chunk = ascending[k * size : (k + 1) * size]
        index[k::m] = chunk.flip(0) if k % 2 == 1 else chunk  # the reference's k = 1..M: even k reversed
    return index


def _slot_gain(perm_scores: torch.Tensor, n: int, m: int, slot: int, chunk_elems: int = 1 << 26) -> torch.Tensor:
    """[G, G]: total kept score of group r when its channel in ``slot`` is replaced by group g's."""
    rows, cols = perm_scores.shape
    groups = cols // m
    s = perm_scores.reshape(rows, groups, m)
    others = torch.cat([s[:, :, :slot], s[:, :, slot + 1 :]], dim=-1)  # [rows, G, m-1]
    cand = s[:, :, slot]  # [rows, G]
    gain = torch.zeros(groups, groups, dtype=torch.float64)
    step = max(1, chunk_elems // max(1, groups * groups * m))
    for r0 in range(0, rows, step):
        o = others[r0 : r0 + step].unsqueeze(2).expand(-1, groups, groups, m - 1)  # [c, r, g, m-1]
        c = cand[r0 : r0 + step].unsqueeze(1).unsqueeze(-1).expand(-1, groups, groups, 1)  # [c, r, g, 1]
        gain += torch.cat([o, c], dim=-1).topk(n, dim=-1).values.sum(-1).sum(0).double()
    return gain


def channel_permutation(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Permuted position → original input channel, chosen to raise the score an N:M mask keeps."""
    scores = scores.float().cpu()
    index = snake_order(scores, m)
    groups = scores.shape[1] // m
    for slot in range(m):
        gain = _slot_gain(scores[:, index], n, m, slot)
        rows, cols = linear_sum_assignment(gain.numpy(), maximize=True)
        idx = torch.arange(scores.shape[1])
        idx[torch.as_tensor(rows) * m + slot] = torch.as_tensor(cols) * m + slot
        index = index[idx]
        assert groups == len(rows)
    return index
