"""The ``hf`` engine: continuous batching with a KV cache and prefix reuse on plain transformers models.

This module is the scheduler; its parts live beside it: the prefix store (:mod:`.prefix`), rows,
branches and their attention mask (:mod:`.branches`), and token sampling (:mod:`.sampling`).

A hand-written decode loop rather than ``model.generate`` because it must

1. draw each request's samples from that request's own seeded generator (one uniform per token; see
   :mod:`~prunescale.tts.engines.sampling`), so a sample does not depend on batch composition, on its
   token budget or on the device (what makes the budget sweep by truncation exact);
2. keep the batch full: finished rows leave the batch and its KV cache at once, and once a quarter of
   the slots are free, waiting requests are prefilled and merged in (left-padded to a common width);
   long and short requests do not pay for each other;
3. continue from a prefix without recomputing it: a request with a ``prefix_key`` reuses the KV of the
   longest common prefix with the last kept sequence under that key (the thinking trace, for every
   budget's answer phase and every "Wait" round), and only its remaining tokens are prefilled;
4. keep that prefix once for all its continuations: requests submitted together under one prefix key
   (a trajectory's answers, one per budget) become *branches* of one row. The row holds the kept KV
   once; each branch attends to its own part of it (its truncation of the thinking) and to its own
   tokens, through a 4-D attention mask, and every step feeds one token per live branch. Five budgets'
   answers then cost one row and one forward call per step, not five rows;
5. take follow-ups: ``on_done`` sees each request end and may submit the next ones (a trajectory's
   next "Wait" round), which join the running batch instead of waiting for a new one.

Rows may have gaps in the middle (cached prefix | padding | new tokens); the attention mask and explicit
position ids make that exact. Merging caches needs plain ``DynamicLayer`` caches; models with
sliding-window (or other) cache layers run fixed batches without merging, reuse or branches, and
branches need an attention implementation that takes a 4-D mask (sdpa, eager).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from prunescale.tts.engines.base import Completion, Request
from prunescale.tts.engines.branches import FAR, SHARED, UNUSED, Batch, Branch, left_pad
from prunescale.tts.engines.prefix import KV, PrefixStore
from prunescale.tts.engines.sampling import sample


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


class HFEngine:
    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        pad_id: int,
        batch_size: int = 32,
        prefix_cache_bytes: int = 2 * 1024**3,
        continuous: bool | None = None,
        max_branches: int = 8,
    ) -> None:
        self.model, self.pad_id, self.batch_size = model.eval(), pad_id, batch_size
        self.device = next(model.parameters()).device
        self.forward_tokens = 0  # tokens pushed through the model (padding included): the cost figure
        self.forward_calls = 0
        params = inspect.signature(model.forward).parameters
        # transformers ≥ 5.2x renamed the cache argument from past_key_values to cache
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = "logits_to_keep" in params
        self.notes: list[str] = []  # every way this engine runs below its best, said once (summary.json)
        try:  # merging batches and reusing prefixes needs plain per-layer caches whose columns are tokens
            layers = DynamicCache(config=model.config).layers
            plain = all(type(layer) is DynamicLayer for layer in layers)
            if not plain:
                kinds = sorted({type(layer).__name__ for layer in layers} - {"DynamicLayer"})
                self._note(f"cache layers {', '.join(kinds)} (sliding window or other): fixed batches without "
                           "merging, prefix reuse or branches")
        except Exception as exc:  # a config the cache cannot read: fixed batches, as plain generate would run
            plain = False
            self._note(f"the KV cache cannot be laid out from this config ({type(exc).__name__}: {exc}): fixed "
                       "batches without merging, prefix reuse or branches")
        self.continuous = plain if continuous is None else (continuous and plain)
        self.store = PrefixStore(prefix_cache_bytes if self.continuous else 0)
        self._attn = getattr(model.config, "_attn_implementation", None)
        # branches need a custom 4-D mask, which sdpa and eager attention take as given
        self.max_branches = max_branches if self.continuous and self._attn in ("sdpa", "eager") else 1
        if self.continuous and self.max_branches == 1 and max_branches > 1:
            self._note(f"attention {self._attn!r} takes no custom 4-D mask: one row per budget's answer, no branches")

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def release(self, keys: Iterable[Hashable]) -> None:
        """Forget the kept KV of these prefix keys (their requests are all done)."""
        self.store.drop(keys)

    def generate(
        self,
        requests: Sequence[Request],
        on_done: Callable[[int, Completion], Sequence[Request]] | None = None,
    ) -> list[Completion]:
        """Completions in request order. ``on_done(index, completion)``, called as each request ends, may
        return follow-up requests: they join the running batch and their completions follow in order.
        Consecutive requests under one prefix key share a row (as branches) when the key's prefix is kept."""
        branches: list[Branch] = []
        pending: deque[list[Branch]] = deque()

        def submit(reqs: Sequence[Request]) -> None:
            group: list[Branch] = []
            for r in reqs:
                # a CPU generator on purpose: it draws one uniform per token (see engines/sampling.py)
                gen = torch.Generator().manual_seed(r.seed) if not r.greedy else None
                br = Branch(r, gen, len(branches))
                branches.append(br)
                if r.max_new_tokens <= 0:
                    if on_done is not None:
                        submit(on_done(br.index, br.result))
                    continue
                if group and (r.prefix_key is None or r.prefix_key != group[0].req.prefix_key
                              or len(group) >= self.max_branches):
                    pending.append(group)
                    group = []
                group.append(br)
            if group:
                pending.append(group)

        submit(requests)
        # similar rows prefill together: by branch count, then prompt length
        pending = deque(sorted(pending, key=lambda g: (len(g), len(g[0].req.prompt_ids))))
        refill_at = self.batch_size - max(1, self.batch_size // 4)
        batch: Batch | None = None
        with torch.no_grad():
            while pending or batch is not None:
                if pending and (batch is None or (self.continuous and len(batch.rows) <= refill_at)):
                    free = self.batch_size - (len(batch.rows) if batch else 0)
                    new = self._prefill([pending.popleft() for _ in range(min(free, len(pending)))])
                    batch = new if batch is None else self._merge(batch, new)
                batch, finished = self._step(batch)
                if on_done is not None:
                    for br in finished:
                        submit(on_done(br.index, br.result))
        return [br.result for br in branches]

    def _rows(self, group: list[Branch]) -> list[tuple[list[Branch], int, KV | None]]:
        """A waiting group as rows: (branches, shared prefix length, its kept KV). The group shares one row
        if every branch reuses the prefix kept under its key; otherwise each branch is a row of its own."""
        found = [self.store.lookup(br.req.prefix_key, br.req.prompt_ids) for br in group]
        for br, (m, _) in zip(group, found):
            br.seen, br.pos, br.feed = m, m, list(br.req.prompt_ids[m:])
        if len(group) > 1 and all(m for m, _ in found):
            for slot, br in enumerate(group):
                br.slot = slot
            return [(group, max(m for m, _ in found), found[0][1])]
        return [([br], m, kv) for br, (m, kv) in zip(group, found)]

    def _prefill(self, groups: list[list[Branch]]) -> Batch:
        """Prefill new rows: each row's shared prefix comes from the store, its branches' remaining
        tokens are fed (right-aligned, one branch after another)."""
        plans = [row for g in groups for row in self._rows(g)]
        n = len(plans)
        shared = max(s for _, s, _ in plans)
        width = max(sum(len(br.feed) for br in brs) for brs, _, _ in plans)
        owner = torch.full((n, shared + width), UNUSED, dtype=torch.long)
        rank = torch.full((n, shared + width), FAR, dtype=torch.long)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        for r, (brs, s, _) in enumerate(plans):
            owner[r, shared - s : shared] = SHARED
            rank[r, shared - s : shared] = torch.arange(s)
            c = width - sum(len(br.feed) for br in brs)
            for br in brs:
                k = len(br.feed)
                ids[r, c : c + k] = torch.tensor(br.feed)
                pos[r, c : c + k] = torch.arange(br.pos, br.pos + k)
                owner[r, shared + c : shared + c + k] = br.slot
                c += k
                br.last = c - 1
        cache = None
        if shared:  # one copy per row, into (layers, 2, rows, heads, shared, head_dim): each layer's slices
            kv0 = next(kv for _, _, kv in plans if kv is not None)  # are then contiguous
            n_layers, _, heads, _, dim = kv0.shape
            full = kv0.new_zeros((n_layers, 2, n, heads, shared, dim))
            for r, (_, s, kv) in enumerate(plans):
                if s:
                    full[:, :, r, :, shared - s :] = kv[:, :, :, :s]
            cache = DynamicCache(ddp_cache_data=[(full[li, 0], full[li, 1]) for li in range(n_layers)])
        batch = Batch(cache, owner.to(self.device), rank.to(self.device), [brs for brs, _, _ in plans])
        self._forward(batch, ids, pos)
        return batch

    @staticmethod
    def _merge(a: Batch, b: Batch) -> Batch:
        width = max(a.owner.shape[1], b.owner.shape[1])
        for la, lb in zip(a.cache.layers, b.cache.layers):
            la.keys = torch.cat([left_pad(la.keys, width, 2), left_pad(lb.keys, width, 2)])
            la.values = torch.cat([left_pad(la.values, width, 2), left_pad(lb.values, width, 2)])
        a.owner = torch.cat([left_pad(a.owner, width, 1, UNUSED), left_pad(b.owner, width, 1, UNUSED)])
        a.rank = torch.cat([left_pad(a.rank, width, 1, FAR), left_pad(b.rank, width, 1, FAR)])
        a.logits, a.rows = torch.cat([a.logits, b.logits]), a.rows + b.rows
        return a

    def _forward(self, batch: Batch, ids: torch.Tensor, pos: torch.Tensor) -> None:
        """Feed a block of new columns (``batch.owner``/``rank`` already cover it) and keep each live
        branch's next-token logits. The engine builds the 4-D mask: each query sees its branch's share of
        the shared prefix, its branch's earlier tokens and itself (transformers would rebuild it every call
        from a 2-D one). Without branches (attention that takes no custom mask, fixed batches) a 2-D mask
        of each row's used columns goes to transformers instead."""
        width = ids.shape[1]
        ids, pos = ids.to(self.device), pos.to(self.device)
        if self.max_branches == 1:  # one branch per row: transformers makes the 4-D mask from a 2-D one
            mask = (batch.owner != UNUSED).long()
        elif width == 1 and all(len(row) == 1 for row in batch.rows):  # a decode step: each row's one
            mask = self._mask_4d((batch.owner != UNUSED)[:, None, None, :])  # query sees its used columns
        else:
            mask = self._mask_4d(batch.allowed(width)[:, None])
        kwargs = {self._cache_arg: batch.cache} if batch.cache is not None else {}
        lasts = sorted({br.last for row in batch.rows for br in row})
        if self._keep_arg:
            kwargs["logits_to_keep"] = 1 if lasts == [width - 1] else torch.tensor(lasts, device=self.device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kwargs)
        self.forward_tokens += ids.numel()
        self.forward_calls += 1
        batch.cache = _cache_of(out)
        logits = out.logits
        if lasts == [width - 1] and all(len(row) == 1 for row in batch.rows):
            batch.logits = logits[:, -1]
        else:  # each branch's row and block column (its index among the kept columns, if only those came)
            at = {c: i for i, c in enumerate(lasts)} if self._keep_arg else {c: c for c in lasts}
            r_idx = torch.tensor([r for r, row in enumerate(batch.rows) for _ in row], device=self.device)
            c_idx = torch.tensor([at[br.last] for row in batch.rows for br in row], device=self.device)
            batch.logits = logits[r_idx, c_idx]
        for row in batch.rows:
            for br in row:
                br.pos += len(br.feed)
                br.feed = []

    def _mask_4d(self, allowed: torch.Tensor) -> torch.Tensor:
        """A (rows, 1, queries, keys) mask as the attention implementation takes it: sdpa a boolean one,
        eager an additive one."""
        if self._attn != "eager":
            return allowed
        dtype = next(self.model.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=self.device).masked_fill(~allowed, torch.finfo(dtype).min)

    def _keep_prefix(self, batch: Batch, r: int, br: Branch) -> None:
        """Store what branch ``br`` of row ``r`` has seen (prompt + every fed token) under its prefix key."""
        owner, rank = batch.owner[r], batch.rank[r]
        cols = (((owner == SHARED) & (rank < br.seen)) | (owner == br.slot)).nonzero().squeeze(1)
        fed = br.req.prompt_ids + br.raw[: len(cols) - len(br.req.prompt_ids)]
        layers = batch.cache.layers
        if len({(layer.keys.shape[1], layer.keys.shape[3], layer.values.shape[3]) for layer in layers}) > 1:
            self._note("layers of different KV shapes (heads, head_dim): prefixes are recomputed, not kept")
            return
        kv = torch.stack([torch.stack((layer.keys[r][:, cols], layer.values[r][:, cols])) for layer in layers])
        self.store.put(br.req.prefix_key, fed, kv)

    def _step(self, batch: Batch) -> tuple[Batch | None, list[Branch]]:
        """Sample one token per live branch, retire finished branches (and emptied rows), feed the rest
        one step."""
        flat = [br for row in batch.rows for br in row]
        chosen = batch.logits.argmax(-1).tolist()
        drawn = [k for k, br in enumerate(flat) if not br.req.greedy]
        if drawn:
            picks = sample(batch.logits[drawn], [flat[k].req for k in drawn], [flat[k].gen for k in drawn])
            for k, t in zip(drawn, picks):
                chosen[k] = t
        keep: list[int] = []
        finished: list[Branch] = []
        k = 0
        for r, row in enumerate(batch.rows):
            live = []
            for br in row:
                req, res = br.req, br.result
                tok = chosen[k]
                k += 1
                stop = tok in req.stop_ids
                if stop:
                    res.stop_id = tok
                else:
                    res.ids.append(tok)
                    br.raw.append(tok)
                    hit = next((s for s in req.stop_sequences if s and tuple(res.ids[-len(s) :]) == s), None)
                    if hit is not None:
                        del res.ids[-len(hit) :]
                        res.stop_sequence = hit
                        stop = True
                    elif len(res.ids) >= req.max_new_tokens:
                        stop = True
                if not stop:
                    br.feed = [tok]
                    live.append(br)
                    continue
                finished.append(br)
                if req.keep_prefix and req.prefix_key is not None and self.continuous:
                    self._keep_prefix(batch, r, br)
            if live:
                keep.append(r)
                if len(live) < len(row):  # the columns only the finished branches attended are nobody's now
                    owner, rank = batch.owner[r], batch.rank[r]
                    gone = (owner == SHARED) & (rank >= max(br.seen for br in live))
                    for slot in {br.slot for br in row} - {br.slot for br in live}:
                        gone |= owner == slot
                    owner[gone] = UNUSED
            batch.rows[r] = live
        if not keep:
            return None, finished
        if finished:
            batch.select(keep, trim=self.continuous)
        width = max(len(row) for row in batch.rows)
        n = len(batch.rows)
        if width == 1:
            ids = torch.tensor([[row[0].feed[0]] for row in batch.rows])
            pos = torch.tensor([[row[0].pos] for row in batch.rows])
            new_owner = torch.tensor([[row[0].slot] for row in batch.rows], device=self.device)
            for row in batch.rows:
                row[0].last = 0
        else:  # one token per live branch, right-aligned
            ids = torch.full((n, width), self.pad_id, dtype=torch.long)
            pos = torch.zeros((n, width), dtype=torch.long)
            new_owner = torch.full((n, width), UNUSED, dtype=torch.long)
            for r, row in enumerate(batch.rows):
                for c, br in enumerate(row, start=width - len(row)):
                    ids[r, c], pos[r, c], new_owner[r, c], br.last = br.feed[0], br.pos, br.slot, c
            new_owner = new_owner.to(self.device)
        batch.owner = torch.cat([batch.owner, new_owner], dim=1)
        batch.rank = torch.cat([batch.rank, torch.full_like(new_owner, FAR)], dim=1)
        self._forward(batch, ids, pos)
        return batch, finished
