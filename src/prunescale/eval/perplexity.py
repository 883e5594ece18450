"""Perplexity on held-out token windows: the quick sanity check for a pruned model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel


@torch.no_grad()
def perplexity(model: PreTrainedModel, samples: Sequence[torch.Tensor], batch_size: int = 8) -> dict:
    """exp(mean next-token NLL) over every predicted token of every (equal-length) window."""
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    by_len: dict[int, list[torch.Tensor]] = {}
    for s in samples:
        by_len.setdefault(int(s.numel()), []).append(s)
    for group in by_len.values():
        for i in range(0, len(group), batch_size):
            ids = torch.stack(group[i : i + batch_size]).to(device)
            logits = model(input_ids=ids, use_cache=False).logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
            nll += float(loss)
            count += ids[:, 1:].numel()
    return {"perplexity": math.exp(nll / max(1, count)), "tokens": count}
