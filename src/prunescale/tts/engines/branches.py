"""Rows and branches of the ``hf`` engine's running batch, and the attention mask that keeps them apart.

A row of the batch holds a KV cache whose columns each have an *owner*: the row's shared prefix (the
kept thinking of one trajectory), the slot of one branch (a request decoded in this row: one budget's
answer), or nobody. Each branch attends to its own share of the shared prefix (its truncation of the
thinking, by rank), to its own earlier tokens and to itself; :meth:`Batch.allowed` builds that mask.
Finished branches free their columns, and :meth:`Batch.trim` drops columns no live branch sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from prunescale.tts.engines.base import Completion, Request

SHARED, UNUSED = -1, -2  # column owners other than a branch's slot: the row's kept prefix, nobody
FAR = 1 << 40  # the rank of a column that is not part of the shared prefix


@dataclass(eq=False)
class Branch:
    """One request: its sampling state and what it sees of its row."""

    req: Request
    gen: torch.Generator | None
    index: int
    result: Completion = field(default_factory=lambda: Completion([]))
    raw: list[int] = field(default_factory=list)  # every token appended, before stop-sequence trimming
    slot: int = 0  # owner id of its columns within the row
    seen: int = 0  # how many of the row's shared columns (by rank) it attends: the prefix it reuses
    pos: int = 0  # position id of its next token
    feed: list[int] = field(default_factory=list)  # tokens the next forward call feeds
    last: int = 0  # block column of its last fed token (where its next logits come from)


@dataclass(eq=False)
class Batch:
    """The running batch: KV cache, who owns each cache column, and the live branches of every row."""

    cache: DynamicCache | None
    # (rows, width) long: SHARED, UNUSED or the slot of the branch that fed the column. A column no live
    # branch of its row attends is UNUSED, so a row with one live branch attends exactly its other columns
    owner: torch.Tensor
    rank: torch.Tensor  # (rows, width) long: order among the row's shared columns, FAR for the others
    rows: list[list[Branch]]
    logits: torch.Tensor | None = None  # (live branches in row order, vocab)

    def select(self, keep: list[int], trim: bool) -> None:
        sel = torch.tensor(keep, device=self.owner.device)
        self.cache.batch_select_indices(sel)
        self.owner, self.rank = self.owner[sel], self.rank[sel]
        self.rows = [self.rows[r] for r in keep]
        if trim:
            self.trim()

    def allowed(self, width: int) -> torch.Tensor:
        """(rows, queries, keys) booleans for a block of ``width`` new columns: each query sees the shared
        columns below its branch's truncation (``seen``), its branch's earlier columns and itself;
        padding queries see only themselves."""
        n, total = self.owner.shape[0], self.owner.shape[1]
        device = self.owner.device
        qslot = self.owner[:, total - width :].clone()
        qseen = torch.zeros((n, width), dtype=torch.long)
        for r, row in enumerate(self.rows):
            for br in row:
                qseen[r, br.last - len(br.feed) + 1 : br.last + 1] = br.seen
        qslot[qslot == UNUSED] = -(1 << 20)
        qseen = qseen.to(device)
        own, rank = self.owner[:, None, :], self.rank[:, None, :]
        col = torch.arange(total, device=device)
        qcol = torch.arange(total - width, total, device=device)[None, :, None]
        allowed = ((own == SHARED) & (rank < qseen[:, :, None])) | ((own == qslot[:, :, None]) & (col <= qcol))
        return allowed | (col == qcol)

    def trim(self) -> None:
        """Drop columns no live branch attends (their rows or branches have left); plain caches only,
        whose columns are the mask's. Leading ones cost nothing (a view); others are copied out once
        there are enough of them to pay for the copy."""
        idx = (self.owner != UNUSED).any(0).nonzero().squeeze(1)
        if not len(idx):
            return
        width, first = self.owner.shape[1], int(idx[0])
        if width - first - len(idx) >= max(4, width // 8):
            self.owner, self.rank = self.owner[:, idx], self.rank[:, idx]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys.index_select(2, idx), layer.values.index_select(2, idx)
        elif first:
            self.owner, self.rank = self.owner[:, first:], self.rank[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


def left_pad(t: torch.Tensor, width: int, dim: int, value: float = 0) -> torch.Tensor:
    extra = width - t.shape[dim]
    if not extra:
        return t
    pad = [0, 0] * (t.dim() - 1 - dim) + [extra, 0]
    return F.pad(t, pad, value=value)
