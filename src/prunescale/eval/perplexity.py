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


@torch.no_grad()
def continuation_perplexity(model: PreTrainedModel, pairs: Sequence[tuple[list[int], list[int]]]) -> dict:
    """exp(mean NLL) of each continuation given its prefix (e.g. a gold solution given its prompt).

    For a model trained with prompt tokens loss-masked (the tiny reasoner), held-out *solutions* are
    the meaningful text: its prompts are random digits no model can predict.
    """
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for prefix, cont in pairs:
        ids = torch.tensor([prefix + cont], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prefix) - 1 : -1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, ids[0, len(prefix) :], reduction="sum"))
        count += len(cont)
    return {"perplexity": math.exp(nll / max(1, count)), "tokens": count}
