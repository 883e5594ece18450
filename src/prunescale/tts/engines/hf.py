"""The ``hf`` engine: continuous batching with a KV cache and prefix reuse on plain transformers models.

A hand-written decode loop rather than ``model.generate`` because it must

1. draw each request's samples from that request's own seeded generator, so a sample does not depend
   on batch composition or on its token budget (what makes the budget sweep by truncation exact);
2. keep the batch full: finished rows leave the batch and its KV cache at once, and once a quarter of
   the slots are free, waiting requests are prefilled and merged in (left-padded to a common width);
   long and short requests do not pay for each other;
3. continue from a prefix without recomputing it: a request with a ``prefix_key`` reuses the KV of the
   longest common prefix with the last kept sequence under that key (the thinking trace, for every
   budget's answer phase and every "Wait" round), and only its remaining tokens are prefilled;
4. take follow-ups: ``on_done`` sees each request end and may submit the next ones (a trajectory's
   answers, its next "Wait" round), which join the running batch instead of waiting for a new one.

Rows of one batch may then have gaps in the middle (cached prefix | padding | new tokens); the 2-D
attention mask and explicit position ids make that exact. Merging caches needs plain
``DynamicLayer`` caches; models with sliding-window (or other) cache layers run fixed batches without
merging or reuse.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from prunescale.tts.engines.base import Completion, Request

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (heads, tokens, head_dim)


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _sample(logits: torch.Tensor, req: Request, gen: torch.Generator | None) -> int:
    probs = torch.softmax(logits.float() / req.temperature, dim=-1)
    if req.top_p < 1.0:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < req.top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter_(0, idx[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))


def _greedy(req: Request) -> bool:
    return req.seed is None or req.temperature == 0


class PrefixStore:
    """KV of kept sequences by prefix key, least recently used first out beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Hashable, tuple[np.ndarray, KV, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.reused_tokens = 0

    def lookup(self, key: Hashable | None, ids: Sequence[int]) -> tuple[int, KV | None]:
        """Length of the reusable prefix of ``ids`` (at most ``len(ids) - 1``: one token must be fed to
        get logits) and the stored KV it is a prefix of."""
        if key is None or key not in self.entries:
            return 0, None
        stored, kv, _ = self.entries[key]
        self.entries.move_to_end(key)
        n = min(len(stored), len(ids) - 1)
        if n <= 0:
            return 0, None
        differ = np.flatnonzero(stored[:n] != np.asarray(ids[:n]))
        m = int(differ[0]) if len(differ) else n
        if m:
            self.hits += 1
            self.reused_tokens += m
        return m, (kv if m else None)

    def put(self, key: Hashable, ids: Sequence[int], kv: KV) -> None:
        """Keep ``kv`` for ``ids`` unless a longer sequence is already kept under ``key``."""
        old = self.entries.get(key)
        if old is not None:
            if len(old[0]) >= len(ids):
                return
            self.drop([key])
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if size > self.max_bytes:
            return
        self.entries[key] = (np.asarray(ids, dtype=np.int64), kv, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.drop([next(iter(self.entries))])

    def drop(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self.bytes -= entry[2]


@dataclass
class _Row:
    req: Request
    gen: torch.Generator | None
    index: int
    result: Completion = field(default_factory=lambda: Completion([]))
    raw: list[int] = field(default_factory=list)  # every token appended, before stop-sequence trimming


@dataclass
class _Batch:
    """The running batch: KV cache, 2-D attention mask, next position and last logits of every row."""

    cache: DynamicCache
    mask: torch.Tensor  # (rows, width) long
    pos: torch.Tensor  # (rows,) long: position id of each row's next token
    logits: torch.Tensor  # (rows, vocab)
    rows: list[_Row]

    def select(self, keep: list[int], trim: bool) -> None:
        sel = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(sel)
        self.mask, self.pos, self.logits = self.mask[sel], self.pos[sel], self.logits[sel]
        self.rows = [self.rows[b] for b in keep]
        if trim:
            self.trim()

    def trim(self) -> None:
        """Drop leading columns no row attends to (rows that needed them have left); plain caches only,
        whose columns are the mask's."""
        used = self.mask.any(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    extra = width - t.shape[dim]
    if not extra:
        return t
    pad = [0, 0] * (t.dim() - 1 - dim) + [extra, 0]
    return F.pad(t, pad)


class HFEngine:
    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        pad_id: int,
        batch_size: int = 32,
        prefix_cache_bytes: int = 2 * 1024**3,
        continuous: bool | None = None,
    ) -> None:
        self.model, self.pad_id, self.batch_size = model.eval(), pad_id, batch_size
        self.device = next(model.parameters()).device
        self.forward_tokens = 0  # tokens pushed through the model (padding included): the cost figure
        params = inspect.signature(model.forward).parameters
        # transformers ≥ 5.2x renamed the cache argument from past_key_values to cache
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        try:  # merging batches and reusing prefixes needs plain per-layer caches whose columns are tokens
            plain = all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)
        except Exception:  # a config the cache cannot read: fixed batches, as plain generate would run
            plain = False
        self.continuous = plain if continuous is None else (continuous and plain)
        self.store = PrefixStore(prefix_cache_bytes if self.continuous else 0)

    def release(self, keys: Iterable[Hashable]) -> None:
        """Forget the kept KV of these prefix keys (their requests are all done)."""
        self.store.drop(keys)

    def generate(
        self,
        requests: Sequence[Request],
        on_done: Callable[[int, Completion], Sequence[Request]] | None = None,
    ) -> list[Completion]:
        """Completions in request order. ``on_done(index, completion)``, called as each request ends, may
        return follow-up requests: they join the running batch and their completions follow in order."""
        rows: list[_Row] = []
        pending: deque[_Row] = deque()

        def submit(reqs: Sequence[Request]) -> None:
            for r in reqs:
                row = _Row(r, torch.Generator().manual_seed(r.seed) if r.seed is not None else None, len(rows))
                rows.append(row)
                if r.max_new_tokens > 0:
                    pending.append(row)
                elif on_done is not None:
                    submit(on_done(row.index, row.result))

        submit(requests)
        pending = deque(sorted(pending, key=lambda w: len(w.req.prompt_ids)))  # similar lengths prefill together
        refill_at = self.batch_size - max(1, self.batch_size // 4)
        batch: _Batch | None = None
        with torch.no_grad():
            while pending or batch is not None:
                if pending and (batch is None or (self.continuous and len(batch.rows) <= refill_at)):
                    free = self.batch_size - (len(batch.rows) if batch else 0)
                    new = self._prefill([pending.popleft() for _ in range(min(free, len(pending)))])
                    batch = new if batch is None else self._merge(batch, new)
                batch, finished = self._step(batch)
                if on_done is not None:
                    for row in finished:
                        submit(on_done(row.index, row.result))
        return [row.result for row in rows]

    def _prefill(self, group: list[_Row]) -> _Batch:
        """Prefill a group of new rows, each from the longest prefix the store holds for it."""
        found = [self.store.lookup(w.req.prefix_key, w.req.prompt_ids) for w in group]
        cached = max(m for m, _ in found)
        rest = [w.req.prompt_ids[m:] for w, (m, _) in zip(group, found)]
        width = max(map(len, rest))
        n = len(group)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, cached + width), dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        for b, ((m, _), r) in enumerate(zip(found, rest)):
            ids[b, width - len(r) :] = torch.tensor(r)
            mask[b, cached - m : cached] = 1
            mask[b, cached + width - len(r) :] = 1
            pos[b, width - len(r) :] = torch.arange(m, m + len(r))
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        kwargs = {}
        if cached:
            layers = []
            for li, (k0, v0) in enumerate(next(kv for _, kv in found if kv is not None)):
                k = k0.new_zeros((n, k0.shape[0], cached, k0.shape[2]))
                v = v0.new_zeros((n, v0.shape[0], cached, v0.shape[2]))
                for b, (m, kv) in enumerate(found):
                    if m:
                        k[b, :, cached - m :] = kv[li][0][:, :m]
                        v[b, :, cached - m :] = kv[li][1][:, :m]
                layers.append((k, v))
            kwargs[self._cache_arg] = DynamicCache(ddp_cache_data=layers)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kwargs,
                         **self._last_only)
        self.forward_tokens += ids.numel()
        lengths = torch.tensor([len(w.req.prompt_ids) for w in group], device=self.device)
        return _Batch(_cache_of(out), mask, lengths, out.logits[:, -1], group)

    @staticmethod
    def _merge(a: _Batch, b: _Batch) -> _Batch:
        width = max(a.mask.shape[1], b.mask.shape[1])
        for la, lb in zip(a.cache.layers, b.cache.layers):
            la.keys = torch.cat([_left_pad(la.keys, width, 2), _left_pad(lb.keys, width, 2)])
            la.values = torch.cat([_left_pad(la.values, width, 2), _left_pad(lb.values, width, 2)])
        a.mask = torch.cat([_left_pad(a.mask, width, 1), _left_pad(b.mask, width, 1)])
        a.pos, a.logits, a.rows = torch.cat([a.pos, b.pos]), torch.cat([a.logits, b.logits]), a.rows + b.rows
        return a

    def _keep_prefix(self, batch: _Batch, b: int) -> None:
        """Store row ``b``'s KV (prompt + every fed token) under its prefix key."""
        row = batch.rows[b]
        cols = batch.mask[b].nonzero().squeeze(1)
        fed = row.req.prompt_ids + row.raw[: len(cols) - len(row.req.prompt_ids)]
        kv = [(layer.keys[b][:, cols].clone(), layer.values[b][:, cols].clone()) for layer in batch.cache.layers]
        self.store.put(row.req.prefix_key, fed, kv)

    def _step(self, batch: _Batch) -> tuple[_Batch | None, list[_Row]]:
        """Sample one token per row, retire finished rows, feed the rest one step."""
        greedy = batch.logits.argmax(-1).tolist()
        keep, nxt, done = [], [], []
        for b, row in enumerate(batch.rows):
            r, res = row.req, row.result
            tok = greedy[b] if _greedy(r) else _sample(batch.logits[b], r, row.gen)
            if tok in r.stop_ids:
                res.stop_id = tok
                done.append(b)
                continue
            res.ids.append(tok)
            row.raw.append(tok)
            hit = next((s for s in r.stop_sequences if s and tuple(res.ids[-len(s) :]) == s), None)
            if hit is not None:
                del res.ids[-len(hit) :]
                res.stop_sequence = hit
                done.append(b)
            elif len(res.ids) >= r.max_new_tokens:
                done.append(b)
            else:
                nxt.append(tok)
                keep.append(b)
        for b in done:
            if batch.rows[b].req.keep_prefix and batch.rows[b].req.prefix_key is not None and self.continuous:
                self._keep_prefix(batch, b)
        finished = [batch.rows[b] for b in done]
        if not keep:
            return None, finished
        if done:
            batch.select(keep, trim=self.continuous)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(keep), 1))], dim=1)
        out = self.model(
            input_ids=torch.tensor(nxt, device=self.device).unsqueeze(1),
            attention_mask=batch.mask,
            position_ids=batch.pos.unsqueeze(1),
            use_cache=True,
            **{self._cache_arg: batch.cache},
        )
        self.forward_tokens += len(keep)
        batch.cache, batch.logits = _cache_of(out), out.logits[:, -1]
        batch.pos = batch.pos + 1
        return batch, finished
