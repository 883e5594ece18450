"""Perplexity on token windows: the number every pruning paper reports, and the quick check of a model.

exp(mean next-token NLL over every predicted token of every window). The vocabulary projection is
applied in chunks of positions, so memory does not grow with window × vocabulary (a 0.5B model's full
fp32 logits over 4k tokens took 6 GB): the model's base runs once per batch, then ``lm_head`` and the
cross-entropy run ``chunk`` positions at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel


def _base_and_head(model: PreTrainedModel):
    base = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if base is None or base is model or head is None:
        return None, None
    return base, head


@torch.no_grad()
def sequence_nll(model: PreTrainedModel, ids: torch.Tensor, start: int = 1, chunk: int = 512) -> tuple[float, int]:
    """(summed NLL, count) of tokens ``ids[:, start:]`` each predicted from the tokens before it."""
    base, head = _base_and_head(model)
    if base is None:  # a model without a separable head: full logits (small models only)
        logits = model(input_ids=ids, use_cache=False).logits[:, start - 1 : -1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, start:].reshape(-1),
                                                 reduction="sum")
        return float(loss), ids[:, start:].numel()
    hidden = base(input_ids=ids, use_cache=False).last_hidden_state
    total, count = 0.0, 0
    scale = getattr(model.config, "final_logit_softcapping", None)
    for a in range(start - 1, ids.shape[1] - 1, chunk):
        b = min(a + chunk, ids.shape[1] - 1)
        logits = head(hidden[:, a:b]).float()
        if scale:  # Gemma-2/3 cap their logits; the loss must see the same numbers generation does
            logits = torch.tanh(logits / scale) * scale
        target = ids[:, a + 1 : b + 1]
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                         reduction="sum"))
        count += target.numel()
    return total, count


@torch.no_grad()
def perplexity(model: PreTrainedModel, samples: Sequence[torch.Tensor], batch_size: int = 8, chunk: int = 512) -> dict:
    """exp(mean next-token NLL) over every predicted token of every window (windows of one length are
    batched together)."""
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    by_len: dict[int, list[torch.Tensor]] = {}
    for s in samples:
        by_len.setdefault(int(s.numel()), []).append(s)
    for group in by_len.values():
        for i in range(0, len(group), batch_size):
            ids = torch.stack(group[i : i + batch_size]).to(device)
            total, n = sequence_nll(model, ids, 1, chunk)
            nll += total
            count += n
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
        total, n = sequence_nll(model, ids, len(prefix))
        nll += total
        count += n
    return {"perplexity": math.exp(nll / max(1, count)), "tokens": count}
