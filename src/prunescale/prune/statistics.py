"""Calibration statistics of unstructured pruning, gathered by hooks during block-by-block passes.

Each prunable Linear gets a statistics object (Wanda's :class:`~prunescale.prune.wanda.InputNorms`,
SparseGPT's Hessian) fed by a forward pre-hook. Linears handed the very same input tensor — q,k,v;
gate,up — share one summary of it: the hook recognises the tensor by identity and by its version
counter (``tensor._version``, bumped by every in-place change), so a modified tensor is never taken
for the one already summarised. :func:`dense_input_stats` is the one pass over the *dense* model that
OWL and DLP score blocks with, and that the method pruning after them reads in the dense regime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from prunescale.models.anatomy import decoder_blocks
from prunescale.prune.block_runner import for_each_block, hooked
from prunescale.prune.sparsegpt import SparseGPT
from prunescale.prune.wanda import InputNorms, InputStats


def stat_hooks(linears: Mapping[str, nn.Linear], stats: Mapping[str, InputNorms | SparseGPT]) -> list:
    """Pre-hooks feeding each Linear's input to its statistics; Linears handed the very same (unmodified)
    input tensor as the previous one — q,k,v; gate,up — reuse its summary instead of recomputing it."""
    last: dict = {}

    def hook(name: str):
        def fn(_m: nn.Module, args: tuple) -> None:
            x, st = args[0], stats[name]
            key = (type(st), x._version)
            if last.get("x") is not x or last.get("key") != key:
                last.update(x=x, key=key, summary=st.summarise(x))
            st.fold(*last["summary"])

        return fn

    return [linears[n].register_forward_pre_hook(hook(n)) for n in stats]


def block_input_stats(block: nn.Module, forward: Callable[..., None], device: str) -> dict[str, InputStats]:
    """‖X_j‖, E[x_j] and E[x_j²] of every Linear of one block (names within the block), from one statistics
    pass that stops once the last Linear has its input."""
    linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
    stats = {n: InputNorms(m.in_features, device) for n, m in linears.items()}
    with hooked(stat_hooks(linears, stats)):
        forward(stop_after=list(linears.values()))
    return {n: st.stats() for n, st in stats.items()}


def dense_input_stats(
    model: nn.Module, samples: Sequence[torch.Tensor], device: str = "cpu", progress: bool = True
) -> tuple[dict[str, InputStats], int]:
    """Input statistics of every prunable Linear on the *dense* model (one block-by-block pass, nothing
    pruned).

    OWL and DLP score blocks with it (they need every block's Wanda scores before any block is pruned);
    Wanda and RIA with ``sequential=False`` (the dense regime) prune with it, reading the allocation's pass
    where there was one; returns the statistics and the number of block forwards it cost.
    """
    blocks = decoder_blocks(model)
    norms: dict[str, InputStats] = {}

    def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
        for n, x in block_input_stats(block, forward, device).items():
            norms[blocks.name(i, n)] = x.cpu()

    run = for_each_block(model, samples, visit, device, progress, "calibration")
    return norms, run["block_forwards"]
