"""Token sampling for the hf engine: one batched call per decode step, the same draws on every device.

The filters run in vLLM's order and with its boundary rules: temperature, then min-p (tokens below
``min_p`` × the top probability are dropped), then top-k (tokens whose logit is below the k-th largest)
and top-p (the least likely tokens whose cumulative probability stays within ``1 - top_p``; the most
likely token always stays). A token is then drawn by inverting the filtered distribution's CDF at one
uniform number per request and step, taken from that request's own CPU generator.

Why the uniform comes from the CPU: a per-request generator on the model's device would give different
samples on CPU and CUDA (and ``multinomial`` refuses a generator of another device). A scalar per row
costs nothing to move, the probabilities never leave the device, and a seeded sample is then the same
on every device, independent of the batch it ran in and of its token budget — what makes the budget
sweep by truncation exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prunescale.tts.engines.base import Request


def filtered_probs(
    logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, min_p: torch.Tensor
) -> torch.Tensor:
    """(rows, vocab) probabilities after temperature, min-p, top-k and top-p (per-row settings; top_k 0,
    top_p 1 and min_p 0 are off)."""
    x = logits.float() / temperature[:, None]
    if bool((min_p > 0).any()):
        probs = torch.softmax(x, dim=-1)
        x = x.masked_fill(probs < min_p[:, None] * probs.amax(-1, keepdim=True), float("-inf"))
    use_k, use_p = bool((top_k > 0).any()), bool((top_p < 1).any())
    if use_k or use_p:
        vocab = x.shape[-1]
        sorted_x, order = x.sort(dim=-1, stable=True)  # ascending
        if use_k:
            k = torch.where(top_k > 0, top_k.clamp(max=vocab), vocab)
            kth = sorted_x.gather(-1, (vocab - k)[:, None])
            sorted_x = sorted_x.masked_fill(sorted_x < kth, float("-inf"))
        if use_p:
            cum = torch.softmax(sorted_x, dim=-1).cumsum(-1)
            drop = cum <= (1 - top_p)[:, None]
            drop[:, -1] = False
            sorted_x = sorted_x.masked_fill(drop, float("-inf"))
        x = torch.empty_like(x).scatter_(-1, order, sorted_x)
    return torch.softmax(x, dim=-1)


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: per row, the first token whose cumulative probability exceeds u.

    A zero-probability token never is (its cumulative probability equals its predecessor's), except past
    the end: a uniform that rounds up to the total in float32 (about 1 draw in 10⁷) would select index
    ``vocab``, so the result is capped at the last token the filters kept, not the last of the vocabulary."""
    cdf = probs.cumsum(-1)
    u = (uniforms.to(probs.device, probs.dtype) * cdf[:, -1])[:, None]
    last_kept = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)
    return torch.minimum(torch.searchsorted(cdf, u, right=True).squeeze(1), last_kept)


def sample(logits: torch.Tensor, requests: Sequence[Request], generators: Sequence[torch.Generator]) -> list[int]:
    """One token per row of ``logits`` for these (sampling) requests; each generator yields one uniform."""
    dev = logits.device
    settings = lambda attr, dtype: torch.tensor([getattr(r, attr) for r in requests], dtype=dtype, device=dev)  # noqa: E731
    probs = filtered_probs(logits, settings("temperature", torch.float32), settings("top_k", torch.long),
                           settings("top_p", torch.float32), settings("min_p", torch.float32))
    uniforms = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    return draw(probs, uniforms).tolist()
