"""The ``hf`` engine: batched decoding with a KV cache on plain transformers models (CPU or GPU).

A hand-written decode loop rather than ``model.generate`` because it must (1) draw each request's
samples from that request's own seeded generator, so a sample does not depend on batch composition or
on its token budget, and (2) drop finished rows from the batch and the cache at once, so long and short
requests do not pay for each other's padding.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from prunescale.tts.engines.base import Completion, Request


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _sample(logits: torch.Tensor, req: Request, gen: torch.Generator | None) -> int:
    if req.seed is None or req.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / req.temperature, dim=-1)
    if req.top_p < 1.0:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < req.top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter_(0, idx[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


class HFEngine:
    name = "hf"

    def __init__(self, model: PreTrainedModel, pad_id: int, batch_size: int = 32) -> None:
        self.model, self.pad_id, self.batch_size = model.eval(), pad_id, batch_size
        self.device = next(model.parameters()).device
        self.forward_tokens = 0  # tokens pushed through the model (padding included): the cost figure
        # transformers ≥ 5.2x renamed the cache argument from past_key_values to cache
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, comp in zip(idx, self._batch([requests[i] for i in idx])):
                out[i] = comp
        return [c for c in out if c is not None]

    @torch.no_grad()
    def _batch(self, reqs: list[Request]) -> list[Completion]:
        n = len(reqs)
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, r in enumerate(reqs):
            ids[row, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[row, width - len(r.prompt_ids) :] = 1
        gens = [torch.Generator().manual_seed(r.seed) if r.seed is not None else None for r in reqs]
        results = [Completion([]) for _ in reqs]
        alive = list(range(n))  # original row of each live batch row
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        self.forward_tokens += ids.numel()
        cache, logits = _cache_of(out), out.logits[:, -1]
        steps = 0
        while alive:
            nxt, keep = [], []
            for b, row in enumerate(alive):
                r, res = reqs[row], results[row]
                if r.max_new_tokens <= 0:
                    continue
                tok = _sample(logits[b], r, gens[row])
                if tok in r.stop_ids:
                    res.stop_id = tok
                    continue
                res.ids.append(tok)
                hit = next((s for s in r.stop_sequences if s and tuple(res.ids[-len(s) :]) == s), None)
                if hit is not None:
                    del res.ids[-len(hit) :]
                    res.stop_sequence = hit
                    continue
                if len(res.ids) >= r.max_new_tokens:
                    continue
                nxt.append(tok)
                keep.append(b)
            steps += 1
            if not keep:
                break
            if len(keep) < len(alive):
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                mask, pos = mask[sel], pos[sel]
                alive = [alive[b] for b in keep]
            mask = torch.cat([mask, torch.ones((len(alive), 1), dtype=mask.dtype, device=self.device)], dim=1)
            pos = pos[:, -1:] + 1
            step_ids = torch.tensor(nxt, device=self.device).unsqueeze(1)
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=pos, use_cache=True,
                             **{self._cache_arg: cache})
            self.forward_tokens += len(alive)
            cache, logits = _cache_of(out), out.logits[:, -1]
        return results
