"""The engine protocol: ``generate(requests) -> completions``, the same for every backend.

A request is token ids in, token ids out: its own token budget, stop tokens and stop sequences, a seed
(``None`` = greedy) and its sampling settings (temperature, top-k, top-p, min-p, applied in vLLM's order:
temperature, then min-p, then top-k and top-p). Continuing an earlier prefix is a request whose prompt
starts with that prefix (a shared ``prefix_key`` lets the engine skip recomputing it). Per-request seeds
make sampling independent of batch composition and of ``max_new_tokens``, which is what lets a budget
sweep reuse one thinking trace for every budget.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Request:
    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: Sequence[int] = ()
    seed: int | None = None  # None: greedy
    temperature: float = 1.0
    top_p: float = 1.0
    stop_sequences: Sequence[tuple[int, ...]] = ()  # multi-token stops (e.g. a plain-text "</think>")
    # requests under one prefix key share a prefix (one thinking trajectory): an engine may reuse the
    # computation of the longest common prefix with the sequence last kept under the key, and decode
    # such requests submitted side by side (a trajectory's budgets) over one copy of it
    prefix_key: Hashable | None = None
    keep_prefix: bool = False  # keep this request's sequence (prompt + output) for later requests
    top_k: int = 0  # keep the k most likely tokens; 0: off
    min_p: float = 0.0  # keep tokens with probability ≥ min_p × the most likely one's; 0: off

    @property
    def greedy(self) -> bool:
        return self.seed is None or self.temperature == 0


@dataclass
class Completion:
    ids: list[int]  # generated ids, without the stop token
    stop_id: int | None = None  # the stop token that ended it, None if the budget ran out
    stop_sequence: tuple[int, ...] | None = None  # the multi-token stop that ended it (stripped from ids)
    meta: dict = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return self.stop_id is not None or self.stop_sequence is not None


class Engine(Protocol):
    name: str

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...
