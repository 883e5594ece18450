"""The prefix store of the ``hf`` engine: the KV of kept sequences by prefix key.

A request with a ``prefix_key`` reuses the KV of the longest common prefix with the last sequence kept
under that key (a trajectory's thinking, for each budget's answer and each "Wait" round), so only its
remaining tokens are prefilled. Entries go least recently used first beyond a byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import torch

KV = torch.Tensor  # a kept sequence's keys and values, all layers: (layers, 2, heads, tokens, head_dim)


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
        size = kv.numel() * kv.element_size()
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
