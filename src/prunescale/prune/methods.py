"""The unstructured pruning methods: Magnitude, Wanda, SparseGPT, RIA; each may have its mask refined by
DSnoT (``refine``). Each is declared by name, with what it needs, in :data:`prunescale.registry.METHODS`.

A method is ``fn(model, pattern, samples, device, progress, **its options) -> run statistics``; it prunes
``model`` in place to the :class:`~prunescale.prune.unstructured.Pattern`. Each takes exactly the options
its declaration lists (an unknown option is a TypeError, not ignored). Kernels stay pure (:mod:`masks`,
:mod:`magnitude`, :mod:`wanda`, :mod:`ria`, :mod:`sparsegpt`, :mod:`dsnot`); the block runner
(:mod:`block_runner`) owns hooks and devices; statistics hooks live in :mod:`statistics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from prunescale.models.anatomy import decoder_blocks, prunable_linears, sequential_groups
from prunescale.prune.block_runner import for_each_block, hooked
from prunescale.prune.dsnot import dsnot_refine
from prunescale.prune.magnitude import magnitude_scores
from prunescale.prune.masks import select
from prunescale.prune.ria import channel_permutation, ria_scores
from prunescale.prune.sparsegpt import SparseGPT
from prunescale.prune.statistics import block_input_stats, dense_input_stats, stat_hooks
from prunescale.prune.wanda import InputStats, wanda_scores


def _apply(linear: nn.Linear, mask: torch.Tensor, new_weight: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        if new_weight is not None:
            linear.weight.copy_(new_weight.to(linear.weight.device))
        linear.weight[mask.to(linear.weight.device)] = 0


def _refined(lin: nn.Linear, mask: torch.Tensor, stats: InputStats, refine: Mapping | None,
             values: torch.Tensor | None = None, pruned: torch.Tensor | None = None,
             name: str = "") -> tuple[torch.Tensor, dict]:
    """DSnoT on one Linear's mask (when asked): ``values`` are the weights' values if kept (default: W),
    ``pruned`` the weights the method would write (default: W with the mask applied). With ``dsnot_skip``
    "mlp" a Linear whose name contains "mlp" keeps its mask (the reference code's default)."""
    if not refine or (refine.get("dsnot_skip", "none") != "none" and refine["dsnot_skip"] in name):
        return mask, {}
    w = lin.weight.detach().float()
    values = w if values is None else values
    pruned = w.masked_fill(mask, 0) if pruned is None else pruned.float()
    error = (w - pruned) @ stats.mean.to(w.device).float()
    return dsnot_refine(values, mask, stats.mean, stats.var, wanda_scores(values, stats.norms), error,
                        refine["dsnot_cycles"], refine["dsnot_threshold"], stats.tokens / stats.sequences)


def _prune_scored(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str,
    progress: bool,
    score: Callable[[nn.Linear, InputStats], torch.Tensor],
    sequential: bool,
    input_stats: Mapping[str, InputStats] | None,
    refine: Mapping | None,
    permute: bool = False,
    description: str = "pruning",
) -> dict:
    """The methods that score each weight from its matrix and its Linear's input statistics (Wanda, RIA,
    magnitude refined by DSnoT): per-row (or per-matrix, or N:M) selection, then the refinement.

    Sequential (default): block ℓ's statistics come from inputs through the already-pruned blocks before
    it, whatever the allocation. Otherwise (``sequential=False``) from the dense model: the statistics
    an allocation's dense pass measured (``input_stats``, OWL / DLP), or one pass run here. The caller
    passes ``input_stats`` only for the dense regime (:func:`prunescale.api.pruning.method_kwargs`)."""
    if input_stats is not None and sequential:
        raise ValueError("input statistics of the dense model were given to a sequential run")
    blocks = decoder_blocks(model)
    forwards, swaps = 0, 0

    def prune_one(full: str, lin: nn.Linear, stats: InputStats) -> None:
        nonlocal swaps
        scores = score(lin, stats)
        if pattern.nm and permute:
            perm = channel_permutation(scores, *pattern.nm)
            mask = torch.empty_like(scores, dtype=torch.bool)
            mask[:, perm] = select(scores[:, perm], None, pattern.nm)
            pattern.permutations[full] = perm
        else:
            mask = select(scores, None if pattern.nm else pattern.sparsity[full], pattern.nm, pattern.group)
        mask, info = _refined(lin, mask, stats, refine, name=full)
        swaps += info.get("swaps", 0)
        _apply(lin, mask)

    if input_stats is None and not sequential:
        input_stats, forwards = dense_input_stats(model, samples, device, progress)
    if input_stats is not None:
        for name, lin in prunable_linears(model).items():
            prune_one(name, lin, input_stats[name])
        run = {"block_forwards": forwards, "regime": "dense-activations"}
    else:

        def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
            linears = dict(block.named_modules())
            for n, stats in block_input_stats(block, forward, device).items():
                prune_one(blocks.name(i, n), linears[n], stats)

        run = {**for_each_block(model, samples, visit, device, progress, description), "regime": "sequential"}
    if refine:
        run["dsnot_swaps"] = swaps
    return run


def prune_none(model: nn.Module, pattern, samples: Sequence[torch.Tensor] = (), device: str = "cpu",
               progress: bool = True) -> dict:
    """Prune nothing (every target is 0): the method of a run that only quantizes."""
    return {"block_forwards": 0, "regime": "data-free"}


def prune_magnitude(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor] = (),
    device: str = "cpu",
    progress: bool = True,
    refine: Mapping | None = None,
    input_stats: Mapping[str, InputStats] | None = None,
) -> dict:
    """|W| per row (default) or per matrix; needs no calibration data (nor a device: no forward runs) —
    unless DSnoT refines the mask, which reads input statistics block by block."""
    if refine:
        return _prune_scored(model, pattern, samples, device, progress, lambda lin, _s: magnitude_scores(lin.weight),
                             input_stats is None, input_stats, refine, description="magnitude+dsnot")
    for name, lin in prunable_linears(model).items():
        target = None if pattern.nm else pattern.sparsity[name]
        _apply(lin, select(magnitude_scores(lin.weight), target, pattern.nm, pattern.group))
    return {"block_forwards": 0, "regime": "data-free"}


def prune_wanda(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    input_stats: Mapping[str, InputStats] | None = None,
    sequential: bool = True,
    refine: Mapping | None = None,
) -> dict:
    """|W|·‖X_j‖ per output row, no weight update.

    Sequential (default, as in the Wanda paper's and OWL's code): block ℓ's statistics come from inputs
    that went through the already-pruned blocks before it. With ``sequential=False`` the statistics come
    from the dense model: ``input_stats`` (OWL's or DLP's dense pass) as given, else one pass here.
    """
    return _prune_scored(model, pattern, samples, device, progress,
                         lambda lin, st: wanda_scores(lin.weight, st.norms), sequential, input_stats, refine,
                         description="wanda")


def prune_ria(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    input_stats: Mapping[str, InputStats] | None = None,
    sequential: bool = True,
    ria_a: float = 0.5,
    ria_permute: bool = False,
    refine: Mapping | None = None,
) -> dict:
    """RIA: (|W|/row sum + |W|/column sum)·‖X_j‖^a per output row (statistics as Wanda's); with N:M and
    ``ria_permute`` the mask is chosen on a channel permutation (recorded for the audit)."""
    return _prune_scored(model, pattern, samples, device, progress,
                         lambda lin, st: ria_scores(lin.weight, st.norms, ria_a), sequential, input_stats, refine,
                         permute=ria_permute, description="ria")


def prune_sparsegpt(
    model: nn.Module,
    pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    sequential: bool = True,
    blocksize: int = 128,
    percdamp: float = 0.01,
    refine: Mapping | None = None,
) -> dict:
    """OBS-style pruning with error compensation; with ``sequential`` the Linears of a block are pruned
    in execution order (q,k,v → o → gate,up → down) so later ones calibrate on pruned inputs."""
    blocks = decoder_blocks(model)
    raised: dict[str, float] = {}  # module → the damping fraction it needed, where more than percdamp
    swaps = [0]

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
                new, mask = stats[n].prune(linears[n].weight, target, pattern.nm, blocksize, percdamp,
                                           keep_candidates=bool(refine))
                if stats[n].percdamp_used != percdamp:
                    raised[full] = stats[n].percdamp_used
                if refine:  # DSnoT swaps on SparseGPT's result: regrown weights take their candidate values
                    assert stats[n].candidates is not None
                    refined, info = _refined(linears[n], mask, stats[n].input_stats(), refine,
                                             stats[n].candidates, new, name=full)
                    grown = mask & ~refined
                    new = torch.where(grown, stats[n].candidates, new.float()).to(new.dtype)
                    mask = refined
                    swaps[0] += info.get("swaps", 0)
                _apply(linears[n], mask, new)
                stats[n].free()

    run = for_each_block(model, samples, visit, device, progress, "sparsegpt")
    refined = {"dsnot_swaps": swaps[0]} if refine else {}
    return {**run, "regime": "sequential", "percdamp_raised": raised, **refined}
