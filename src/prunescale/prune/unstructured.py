"""One-shot unstructured pruning of a whole model: a pattern, a registered method, then the audit.

The engine takes a per-module sparsity mapping (module name → sparsity), so any allocation plugs in.
The methods are in :mod:`methods`, their calibration statistics in :mod:`statistics`, the block-by-block
runner in :mod:`block_runner`; after pruning, :mod:`audit` measures the realised sparsity of every module
and of the whole model from the weights themselves and checks it against the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import prunable_linears
from prunescale.prune.audit import check_realised
from prunescale.registry import METHODS


@dataclass
class Pattern:
    """What to prune: a sparsity per module, or a fixed N:M pattern for all of them."""

    sparsity: dict[str, float] = field(default_factory=dict)
    nm: tuple[int, int] | None = None
    group: str = "row"  # comparison group for magnitude: row | matrix
    # module → permuted position → input channel, where a method chose its N:M mask on permuted channels
    # (RIA's channel permutation): the N:M groups are consecutive in that order
    permutations: dict[str, torch.Tensor] = field(default_factory=dict)

    def target(self, name: str) -> float:
        return 1 - self.nm[0] / self.nm[1] if self.nm else self.sparsity[name]


def uniform(model: nn.Module, sparsity: float) -> dict[str, float]:
    return {name: sparsity for name in prunable_linears(model)}


def prune_model(
    model: nn.Module,
    method_name: str,
    pattern: Pattern,
    samples: Sequence[torch.Tensor] = (),
    **options: object,
) -> dict:
    """Prune ``model`` in place with a registered method, then check and return the realised sparsity."""
    method = METHODS.get_or_fail(method_name)
    linears = prunable_linears(model)
    if not linears:
        raise PrunescaleError(f"{type(model).__name__} has no nn.Linear layers in its decoder blocks to prune")
    if pattern.nm:
        odd = [n for n, m in linears.items() if m.in_features % pattern.nm[1]]
        if odd:
            raise PrunescaleError(f"{pattern.nm[0]}:{pattern.nm[1]} needs input sizes divisible by "
                                  f"{pattern.nm[1]}; {odd[0]} has {linears[odd[0]].in_features}")
    missing = [n for n in linears if not pattern.nm and n not in pattern.sparsity]
    if missing:
        raise PrunescaleError(f"no sparsity given for {len(missing)} module(s), e.g. {missing[0]}")
    calibrated = method.calibrated or options.get("refine")
    if calibrated and not samples and options.get("input_stats") is None:
        raise PrunescaleError(f"{method_name}{'+dsnot' if options.get('refine') else ''} needs calibration samples")
    stats = method(model, pattern, samples, **options)
    return {**check_realised(model, pattern), "run": stats}
