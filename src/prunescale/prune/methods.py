"""The unstructured pruning methods, registered by name: Magnitude, Wanda, SparseGPT.

A method is ``fn(model, pattern, samples, device, progress, **its options) -> run statistics``; it prunes
``model`` in place to the :class:`~prunescale.prune.unstructured.Pattern`. Each takes exactly the options
:data:`prunescale.config.METHOD_OPTIONS` lists for it (an unknown option is a TypeError, not ignored).
Kernels stay pure (:mod:`masks`, :mod:`magnitude`, :mod:`wanda`, :mod:`sparsegpt`); the block runner
(:mod:`block_runner`) owns hooks and devices; statistics hooks live in :mod:`statistics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from prunescale.models.anatomy import decoder_blocks, prunable_linears, sequential_groups
from prunescale.prune.block_runner import for_each_block, hooked
from prunescale.prune.magnitude import magnitude_scores
from prunescale.prune.masks import select
from prunescale.prune.sparsegpt import SparseGPT
from prunescale.prune.statistics import block_input_norms, dense_input_norms, stat_hooks
from prunescale.prune.wanda import wanda_scores

PruneFn = Callable[..., dict]
METHODS: dict[str, PruneFn] = {}


def method(name: str) -> Callable[[PruneFn], PruneFn]:
    """Register a pruning method under ``name`` (the CLI's ``--method`` values come from here)."""

    def deco(fn: PruneFn) -> PruneFn:
        METHODS[name] = fn
        return fn

    return deco


def _apply(linear: nn.Linear, mask: torch.Tensor, new_weight: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        if new_weight is not None:
            linear.weight.copy_(new_weight.to(linear.weight.device))
        linear.weight[mask.to(linear.weight.device)] = 0


@method("magnitude")
def prune_magnitude(
    model: nn.Module, pattern, samples: Sequence[torch.Tensor] = (), device: str = "cpu", progress: bool = True
) -> dict:
    """|W| per row (default) or per matrix; needs no calibration data (nor a device: no forward runs)."""
    for name, lin in prunable_linears(model).items():
        target = None if pattern.nm else pattern.sparsity[name]
        _apply(lin, select(magnitude_scores(lin.weight), target, pattern.nm, pattern.group))
    return {"block_forwards": 0}


@method("wanda")
def prune_wanda(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    input_norms: Mapping[str, torch.Tensor] | None = None,
    sequential: bool = True,
) -> dict:
    """|W|·‖X_j‖ per output row, no weight update.

    Sequential (default, as in the Wanda paper's code): block ℓ's statistics come from inputs that went
    through the already-pruned blocks before it. With ``sequential=False`` the statistics come from the
    dense model (one pass, then every block is pruned). ``input_norms`` (e.g. from OWL's dense pass)
    are used as given: no calibration pass runs.
    """
    blocks = decoder_blocks(model)
    forwards = 0
    if input_norms is None and not sequential:
        input_norms, forwards = dense_input_norms(model, samples, device, progress)
    if input_norms is not None:
        for name, lin in prunable_linears(model).items():
            target = None if pattern.nm else pattern.sparsity[name]
            _apply(lin, select(wanda_scores(lin.weight, input_norms[name]), target, pattern.nm, "row"))
        return {"block_forwards": forwards, "activations": "dense"}

    def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
        linears = dict(block.named_modules())
        for n, norms in block_input_norms(block, forward, device).items():
            target = None if pattern.nm else pattern.sparsity[blocks.name(i, n)]
            _apply(linears[n], select(wanda_scores(linears[n].weight, norms), target, pattern.nm, "row"))

    return {**for_each_block(model, samples, visit, device, progress, "wanda"), "activations": "sequential"}


@method("sparsegpt")
def prune_sparsegpt(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    sequential: bool = True,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> dict:
    """OBS-style pruning with error compensation; with ``sequential`` the Linears of a block are pruned
    in execution order (q,k,v → o → gate,up → down) so later ones calibrate on pruned inputs."""
    blocks = decoder_blocks(model)
    raised: dict[str, float] = {}  # module → the damping fraction it needed, where more than percdamp

    def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        groups = sequential_groups(list(linears)) if sequential else [list(linears)]
        for group in groups:
            stats = {n: SparseGPT(linears[n].in_features, device) for n in group}
            with hooked(stat_hooks(linears, stats)):
                forward(stop_after=[linears[n] for n in group])
            for n in group:
                full = blocks.name(i, n)
                target = None if pattern.nm else pattern.sparsity[full]
                new, mask = stats[n].prune(linears[n].weight, target, pattern.nm, blocksize, percdamp)
                if stats[n].percdamp_used != percdamp:
                    raised[full] = stats[n].percdamp_used
                _apply(linears[n], mask, new)
                stats[n].free()

    run = for_each_block(model, samples, visit, device, progress, "sparsegpt")
    return {**run, "activations": "sequential", "percdamp_raised": raised}
