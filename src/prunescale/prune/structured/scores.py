"""How much each block (or run of blocks) changes the hidden state, from one calibration pass.

For a sample, ``h_ℓ`` is the hidden state entering block ℓ (ℓ < L) and ``h_L`` the last block's output,
taken through the model's final norm when ``final_norm`` (as Hugging Face's ``hidden_states[-1]`` is,
which the ShortGPT code and Gromov et al.'s setting use). ``cos(h_ℓ, h_{ℓ+n})`` is a per-token dot
product (never a tokens × tokens matrix), averaged over every calibration token, or over the last token
of each sample only (``last_token``, Gromov et al.). Samples are un-padded sequences run one at a time,
so every averaged token is real.

* ShortGPT's Block Influence ``BI_ℓ = 1 − mean cos(h_ℓ, h_{ℓ+1})``.
* Angular distance of a run of n blocks ``arccos(mean cos(h_ℓ, h_{ℓ+n})) / π`` (Gromov et al. 2024).

Both come out of the same block-by-block pass (:mod:`prunescale.prune.block_runner`), which keeps only
the last ``max_run + 1`` boundaries in memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import torch
from torch import nn

from prunescale.models.anatomy import decoder_blocks
from prunescale.models.anatomy import final_norm as anatomy_final_norm
from prunescale.prune.block_runner import capture_inputs, run_block


def _mean_token_cos(a: list[torch.Tensor], b: list[torch.Tensor], last_token: bool) -> tuple[float, int]:
    total, count = 0.0, 0
    for x, y in zip(a, b):
        x2, y2 = x.reshape(-1, x.shape[-1]).float(), y.reshape(-1, y.shape[-1]).float()
        if last_token:
            x2, y2 = x2[-1:], y2[-1:]
        total += float(torch.nn.functional.cosine_similarity(x2, y2, dim=-1, eps=1e-8).sum())
        count += x2.shape[0]
    return total, count


@torch.no_grad()
def boundary_cosines(
    model: nn.Module,
    samples: Sequence[torch.Tensor],
    max_run: int = 1,
    device: str = "cpu",
    last_token: bool = False,
    final_norm: bool = False,
) -> dict[int, list[float]]:
    """{n: [mean cos(h_ℓ, h_{ℓ+n}) for ℓ in 0..L−n]} for n = 1..max_run, in one calibration pass (see the
    module docstring for ``last_token`` and ``final_norm``)."""
    blocks = decoder_blocks(model)
    n_blocks = len(blocks.layers)
    max_run = min(max_run, n_blocks)
    calls = capture_inputs(model, samples, device)
    window: deque[list[torch.Tensor]] = deque(maxlen=max_run + 1)
    window.append([c.hidden for c in calls])
    sums = {n: [0.0] * (n_blocks - n + 1) for n in range(1, max_run + 1)}
    counts = {n: [0] * (n_blocks - n + 1) for n in range(1, max_run + 1)}
    for i, block in enumerate(blocks.layers):
        block.to(device)
        try:
            outs = run_block(block, calls, device, i)
        finally:
            block.to("cpu")
        for c, h in zip(calls, outs):
            c.hidden = h
        if final_norm and i == n_blocks - 1 and (norm := anatomy_final_norm(model)) is not None:
            norm.to(device)
            try:
                outs = [norm(h.to(device)).to(h.device) for h in outs]
            finally:
                norm.to("cpu")
        window.append(outs)
        for n in range(1, min(max_run, i + 1) + 1):
            start = i + 1 - n
            s, k = _mean_token_cos(window[-1 - n], outs, last_token)
            sums[n][start] += s
            counts[n][start] += k
    return {n: [s / max(1, k) for s, k in zip(sums[n], counts[n])] for n in sums}


def block_influence(cosines: dict[int, list[float]]) -> list[float]:
    return [1.0 - c for c in cosines[1]]


def angular_distance(cosines: dict[int, list[float]], n: int) -> list[float]:
    return [math.acos(max(-1.0, min(1.0, c))) / math.pi for c in cosines[n]]
