"""Wanda (Sun et al. 2023): score ``|W_ij| · ‖X_:,j‖₂`` — weight size times the norm of its input feature.

:class:`InputNorms` accumulates the squared input-feature norms of one Linear over calibration batches;
only non-padding tokens may be passed in (the caller drops them).
"""

from __future__ import annotations

import torch


class InputNorms:
    """Running ``Σ_tokens x_j²`` for every input feature j of one Linear (fp32)."""

    def __init__(self, in_features: int, device: torch.device | str = "cpu") -> None:
        self.sq = torch.zeros(in_features, dtype=torch.float32, device=device)
        self.tokens = 0

    @staticmethod
    def summarise(x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This batch's contribution (Σ x_j², tokens); computed once for Linears that share an input."""
        x = x.detach().reshape(-1, x.shape[-1]).float()
        return (x * x).sum(0), x.shape[0]

    def fold(self, sq: torch.Tensor, tokens: int) -> None:
        self.sq += sq
        self.tokens += tokens

    def add_batch(self, x: torch.Tensor) -> None:
        self.fold(*self.summarise(x))

    def norms(self) -> torch.Tensor:
        return self.sq.sqrt()


def wanda_scores(weight: torch.Tensor, input_norms: torch.Tensor) -> torch.Tensor:
    return weight.detach().abs().float() * input_norms.to(weight.device).float().unsqueeze(0)
