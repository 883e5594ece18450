"""Wanda (Sun et al. 2023): score ``|W_ij| · ‖X_:,j‖₂`` — weight size times the norm of its input feature.

:class:`InputNorms` accumulates, per input feature of one Linear, ``Σ x_j²`` (Wanda's and RIA's norms)
and ``Σ x_j`` (DSnoT's mean and variance) over calibration batches — one pass serves every method that
reads input statistics; only non-padding tokens may be passed in (the caller drops them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class InputStats:
    """Per input feature j: ``norms`` = ‖X_j‖₂ over all tokens, ``mean`` = E[x_j], ``sq_mean`` = E[x_j²]."""

    norms: torch.Tensor
    mean: torch.Tensor
    sq_mean: torch.Tensor
    tokens: int
    sequences: int = 1  # calibration sequences (one fold each): DSnoT's threshold is per sequence

    @property
    def var(self) -> torch.Tensor:
        return (self.sq_mean - self.mean**2).clamp_min(0)

    def cpu(self) -> InputStats:
        return InputStats(self.norms.cpu(), self.mean.cpu(), self.sq_mean.cpu(), self.tokens, self.sequences)


class InputNorms:
    """Running ``Σ_tokens x_j²`` and ``Σ_tokens x_j`` for every input feature j of one Linear (fp32)."""

    def __init__(self, in_features: int, device: torch.device | str = "cpu") -> None:
        self.sq = torch.zeros(in_features, dtype=torch.float32, device=device)
        self.s1 = torch.zeros(in_features, dtype=torch.float32, device=device)
        self.tokens = 0
        self.sequences = 0

    @staticmethod
    def summarise(x: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor]:
        """This batch's contribution (Σ x_j², tokens, Σ x_j); computed once for Linears sharing an input."""
        x = x.detach().reshape(-1, x.shape[-1]).float()
        return (x * x).sum(0), x.shape[0], x.sum(0)

    def fold(self, sq: torch.Tensor, tokens: int, s1: torch.Tensor) -> None:
        self.sq += sq
        self.s1 += s1
        self.tokens += tokens
        self.sequences += 1

    def add_batch(self, x: torch.Tensor) -> None:
        self.fold(*self.summarise(x))

    def norms(self) -> torch.Tensor:
        return self.sq.sqrt()

    def stats(self) -> InputStats:
        n = max(1, self.tokens)
        return InputStats(self.norms(), self.s1 / n, self.sq / n, self.tokens, max(1, self.sequences))


def wanda_scores(weight: torch.Tensor, input_norms: torch.Tensor) -> torch.Tensor:
    return weight.detach().abs().float() * input_norms.to(weight.device).float().unsqueeze(0)
