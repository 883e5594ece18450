"""Magnitude pruning: the score of a weight is its absolute value. Needs no data."""

from __future__ import annotations

import torch


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().abs().float()
