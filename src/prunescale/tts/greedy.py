"""Batched greedy continuation with Hugging Face ``generate`` (left padding, KV cache).

Greedy decoding is what makes the budget sweep by truncation exact; this is the small shared routine
the tiny-reasoner check and self-generated calibration traces use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel


@torch.no_grad()
def greedy_continue(
    model: PreTrainedModel,
    contexts: Sequence[list[int]],
    max_new: int,
    stop_ids: Sequence[int],
    pad_id: int,
    batch_size: int = 64,
) -> list[tuple[list[int], bool]]:
    """Greedy continuation of each context: (new ids without the stop token, stopped?).

    Contexts are sorted by length and left-padded per batch so padding stays small.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    out: list[tuple[list[int], bool]] = [([], False)] * len(contexts)
    stops = set(stop_ids)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(contexts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(idx):
            ctx = contexts[i]
            ids[row, width - len(ctx) :] = torch.tensor(ctx)
            mask[row, width - len(ctx) :] = 1
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=list(stop_ids),
            pad_token_id=pad_id,
        )[:, width:].tolist()
        for row, i in enumerate(idx):
            new: list[int] = []
            stopped = False
            for t in gen[row]:
                if t in stops:
                    stopped = True
                    break
                new.append(t)
            out[i] = (new, stopped)
    return out
