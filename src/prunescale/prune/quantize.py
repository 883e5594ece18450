"""Weight-only integer quantization: round-to-nearest (RTN) and GPTQ (Frantar et al. 2023), mask-preserving.

The quantizer is GPTQ's reference one: asymmetric min-max per group of ``group_size`` consecutive input
columns of a row (``-1``: the whole row), the range widened to contain 0, ``scale = (max − min)/(2^b − 1)``,
``zero = round(−min/scale)``, ``q = clamp(round(w/scale) + zero, 0, 2^b − 1)`` and ``ŵ = scale·(q − zero)``.
Because the range contains 0, ``zero`` is an integer code in range and a weight of 0 dequantizes to exactly
0: a pruned weight is representable in every group, and both methods force the pruned positions (``mask``)
to 0, so quantization never revives a pruned weight (GPTQ's error updates do reach pruned positions; the
value written there is 0 and the error of writing it is compensated like any other).

GPTQ quantizes column by column and spreads each column's error over the columns not yet quantized through
the upper Cholesky factor of the damped inverse Hessian (the same loop as :mod:`sparsegpt`, whose Hessian
accumulation it reuses). Every group's parameters are fixed from the weights before any update ("static
groups", llm-compressor's rule in every mode), so they do not depend on the processing order: with
``act_order`` the columns are processed by descending Hessian diagonal while the groups stay the contiguous
columns of the original order (the saved matrix needs no permutation index; the permutation is undone before
return). ``static_groups=False`` is the IST-DASLab reference's rule instead: a group's parameters are taken
when the loop reaches its first column, from the weights as updated by every column before it (blocks are
aligned to groups so that those values are current).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunescale.prune.sparsegpt import SparseGPT, _damped_inverse_cholesky


@dataclass
class Quantized:
    """A quantized matrix: dequantized weights (fp32) and the parameters of every (row, group)."""

    weight: torch.Tensor
    scale: torch.Tensor  # (rows, groups)
    zero: torch.Tensor  # (rows, groups), integer codes stored as float
    group_size: int  # columns per group (the row width for per-row quantization)

    def codes(self) -> torch.Tensor:
        """The integer code of every weight, recovered exactly from ``weight = scale·(q − zero)``."""
        scale = self.scale.repeat_interleave(self.group_size, 1)
        zero = self.zero.repeat_interleave(self.group_size, 1)
        return torch.round(self.weight / scale + zero).to(torch.int32)


def group_params(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero of each row of ``w`` (…, rows, width) over its last dimension, range widened to hold 0."""
    maxq = 2**bits - 1
    lo = w.amin(-1, keepdim=True).clamp(max=0)
    hi = w.amax(-1, keepdim=True).clamp(min=0)
    flat = (lo == 0) & (hi == 0)  # an all-zero group (a fully pruned row slice): any scale represents it
    lo, hi = torch.where(flat, -1.0, lo), torch.where(flat, 1.0, hi)
    scale = (hi - lo) / maxq
    return scale, torch.round(-lo / scale)


def fake_quantize(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Round ``w`` to its group's grid and dequantize (``scale``/``zero`` broadcast against ``w``)."""
    q = torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)
    return scale * (q - zero)


def _width(group_size: int, cols: int) -> int:
    return cols if group_size == -1 else group_size


def rtn(weight: torch.Tensor, bits: int, group_size: int, mask: torch.Tensor | None = None) -> Quantized:
    """Round every weight to its group's grid (no calibration); ``mask``: pruned positions, kept at 0."""
    rows, cols = weight.shape
    g = _width(group_size, cols)
    w = weight.detach().float().reshape(rows, cols // g, g)
    scale, zero = group_params(w, bits)
    out = fake_quantize(w, scale, zero, bits).reshape(rows, cols)
    if mask is not None:
        out[mask] = 0.0
    return Quantized(out, scale.squeeze(-1), zero.squeeze(-1), g)


def _aligned_blocksize(blocksize: int, group: int) -> int:
    """A lazy-update block size whose blocks start at group starts or contain whole groups, so a group's
    parameters are always taken from fully updated weights."""
    if group <= blocksize:
        return group * (blocksize // group)
    return blocksize if group % blocksize == 0 else group


class GPTQ(SparseGPT):
    """One Linear's GPTQ: ``add_batch``/``fold`` accumulate ``H = 2XᵀX/N`` (as SparseGPT), ``quantize``
    returns the quantized matrix; ``weight`` is never modified in place."""

    @torch.no_grad()
    def quantize(self, weight: torch.Tensor, bits: int, group_size: int, act_order: bool = False,
                 mask: torch.Tensor | None = None, blocksize: int = 128, percdamp: float = 0.01,
                 static_groups: bool = True) -> Quantized:
        """``static_groups`` (default): every group's parameters from the weights before any update; off
        (without act-order): from the updated weights when the loop reaches the group (module docstring)."""
        assert self.H is not None, "quantize after free()"
        W = weight.detach().clone().float()
        rows, cols = W.shape
        g = _width(group_size, cols)
        H = self.H.clone()
        dead = torch.diag(H) == 0
        H[dead, dead] = 1.0
        W[:, dead] = 0.0  # an input never seen in calibration: its column cannot be calibrated (as the reference)
        static = None
        if act_order or static_groups or group_size == -1:  # fixed before any update, per original-order group
            static = group_params(W.reshape(rows, cols // g, g), bits)
        perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(cols, device=W.device)
        W, H = W[:, perm], H[perm][:, perm]
        keep_zero = mask[:, perm] if mask is not None else None
        Hinv, self.percdamp_used = _damped_inverse_cholesky(H, percdamp)
        scales = torch.zeros(rows, cols // g, device=W.device)
        zeros = torch.zeros_like(scales)
        if static is not None:
            scales, zeros = static[0].squeeze(-1), static[1].squeeze(-1)
        step = blocksize if static is not None else _aligned_blocksize(blocksize, g)
        for i1 in range(0, cols, step):
            i2 = min(i1 + step, cols)
            W1 = W[:, i1:i2].clone()
            Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            for i in range(i2 - i1):
                col = i1 + i
                if static is None and col % g == 0:  # a new group: its parameters from the updated weights
                    scale, zero = group_params(W1[:, i:i + g], bits)
                    scales[:, col // g], zeros[:, col // g] = scale[:, 0], zero[:, 0]
                group = int(perm[col]) // g
                w = W1[:, i]
                q = fake_quantize(w, scales[:, group], zeros[:, group], bits)
                if keep_zero is not None:
                    q[keep_zero[:, col]] = 0.0
                Q1[:, i] = q
                err = (w - q) / Hinv1[i, i]
                W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
                Err1[:, i] = err
            W[:, i1:i2] = Q1
            W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
        out = torch.empty_like(W)
        out[:, perm] = W  # undo the processing order: column perm[k] was processed k-th
        if mask is not None:
            out[mask] = 0.0
        return Quantized(out, scales, zeros, g)
