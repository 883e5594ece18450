"""Allocators registered by name: (model, target S, data) → sparsity per module name.

Each allocator returns an :class:`Allocation`: the per-module mapping the pruning engine consumes, the
per-block values and scores for the manifest and the ``allocation`` command, and — for OWL and DLP — the
dense input statistics they measured, which the method that prunes next (Wanda, RIA) reads in the dense
regime (``sequential`` off) instead of a second pass; in the sequential regime (the default) it
calibrates on the pruned blocks' outputs as it does under every allocation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunescale.config import AllocationOptions, read_allocation_file
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks, prunable_linears
from prunescale.prune.allocation.allocate import (
    MAX_SPARSITY,
    blocks_to_modules,
    check_allocation,
    linear_ratios,
    rescale_to_mean,
)
from prunescale.prune.allocation.alpha import eigenvalues, hill_alpha
from prunescale.prune.allocation.atp import atp_sparsities
from prunescale.prune.allocation.dlp import dlp_sparsities, median_score
from prunescale.prune.allocation.layerif import layer_influence
from prunescale.prune.allocation.owl import outlier_ratio, owl_sparsities
from prunescale.prune.statistics import dense_input_stats
from prunescale.prune.wanda import InputStats, wanda_scores
from prunescale.registry import ALLOCATIONS


@dataclass
class AllocationContext:
    model: nn.Module
    target: float
    samples: Sequence[torch.Tensor] = ()
    device: str = "cpu"
    knobs: AllocationOptions = field(default_factory=AllocationOptions)  # OWL's M and λ, ε (their defaults)
    file: str | None = None
    influence_data: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None  # (train, validation)
    influence_key: str = ""  # describes influence_data for the cache key
    cache: Path | None = None
    progress: bool = False


@dataclass
class Allocation:
    sparsity: dict[str, float]
    per_block: list[float]
    scores: dict[str, list[float]] = field(default_factory=dict)
    input_stats: dict[str, InputStats] | None = None  # full Linear name → its dense input statistics
    block_forwards: int = 0
    note: str = ""  # said when the allocation came out uniform although it was not asked to


def module_blocks(model: nn.Module) -> dict[str, int]:
    """Prunable module name → index of its block."""
    blocks = decoder_blocks(model)
    prefix = blocks.path + "."
    return {name: int(name[len(prefix) :].split(".", 1)[0]) for name in prunable_linears(model)}


def block_weights(model: nn.Module) -> list[int]:
    """Prunable parameters per block (the weights of every parameter-weighted mean)."""
    sizes = [0] * len(decoder_blocks(model).layers)
    lin = prunable_linears(model)
    for name, block in module_blocks(model).items():
        sizes[block] += lin[name].weight.numel()
    return sizes


def _finish(ctx: AllocationContext, per_block: list[float], **extra) -> Allocation:
    sparsity = blocks_to_modules(per_block, module_blocks(ctx.model))
    params = {n: m.weight.numel() for n, m in prunable_linears(ctx.model).items()}
    check_allocation(sparsity, params, ctx.target)
    return Allocation(sparsity, per_block, **extra)


def uniform(ctx: AllocationContext) -> Allocation:
    """Every Linear gets S."""
    return _finish(ctx, [ctx.target] * len(decoder_blocks(ctx.model).layers))


def _weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, lin in sorted(prunable_linears(model).items()):
        h.update(name.encode())
        h.update(lin.weight.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def block_alphas(model: nn.Module, cache: Path | None = None) -> list[float]:
    """Mean Hill α per block (x_min at the spectral peak, as AlphaPruning's reference code), cached by a
    hash of the weights (not a folder name) and the estimator."""
    key = f"{_weights_hash(model)}-hill-peak-v2"
    path = (cache / "alpha" / f"{key}.json") if cache else None
    if path is not None and path.exists():
        return json.loads(path.read_text())["block_alpha"]
    per_block: dict[int, list[float]] = {}
    lin = prunable_linears(model)
    for name, block in module_blocks(model).items():
        try:
            per_block.setdefault(block, []).append(hill_alpha(eigenvalues(lin[name].weight))[0])
        except ValueError as exc:
            raise PrunescaleError(f"AlphaPruning: no power-law fit for {name}: {exc}") from None
    alphas = [sum(v) / len(v) for _, v in sorted(per_block.items())]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"block_alpha": alphas}))
    return alphas


def alpha(ctx: AllocationContext) -> Allocation:
    """AlphaPruning: higher α (lighter spectral tail, less trained) → more pruning; data-free."""
    alphas = block_alphas(ctx.model, ctx.cache)
    ratios = linear_ratios(alphas, ctx.knobs.epsilon, higher_prunes_more=True)
    per_block = rescale_to_mean(ratios, block_weights(ctx.model), ctx.target)
    return _finish(ctx, per_block, scores={"alpha": alphas})


def _layerif_on_device(ctx: AllocationContext, work: Callable[[], list[float]]) -> list[float]:
    """Run ``work`` with the whole model on ``ctx.device`` and bring it back to the host afterwards.

    LayerIF backpropagates through the whole model once per example (48 passes by default), which the
    block-by-block runner cannot split; on a 7-8B model that is hours on a CPU (README "Hardware"), so with
    a GPU the model, its gradients and the activations go to the device for the duration."""
    if str(ctx.device) == "cpu":
        return work()
    try:
        ctx.model.to(ctx.device)
        return work()
    except torch.OutOfMemoryError as e:
        raise PrunescaleError(
            f"LayerIF needs the whole model, its gradients and one example's activations on {ctx.device} "
            "(about twice the weights plus activations) and ran out of memory: use --device cpu or fewer "
            "--layerif-examples of a shorter --seqlen"
        ) from e
    finally:
        ctx.model.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def layerif(ctx: AllocationContext) -> Allocation:
    """LayerIF: blocks with a larger sum of positive influences are pruned more (data: train/held-out)."""
    if ctx.influence_data is None:
        raise PrunescaleError("LayerIF needs task data (train and held-out examples)")
    key = f"{_weights_hash(ctx.model)}-{hashlib.sha256(ctx.influence_key.encode()).hexdigest()[:12]}-layerif-v2"
    path = (ctx.cache / "layerif" / f"{key}.json") if ctx.cache else None
    if path is not None and path.exists():
        scores = json.loads(path.read_text())["block_score"]
    else:
        scores = _layerif_on_device(ctx, lambda: layer_influence(ctx.model, *ctx.influence_data, progress=ctx.progress))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"block_score": scores, "data": ctx.influence_key}))
    ratios = linear_ratios(scores, ctx.knobs.epsilon, higher_prunes_more=True)
    per_block = rescale_to_mean(ratios, block_weights(ctx.model), ctx.target)
    return _finish(ctx, per_block, scores={"influence": scores})


def _dense_block_statistic(
    ctx: AllocationContext, reduce: Callable[[list[torch.Tensor]], float]
) -> tuple[dict[str, InputStats], int, list[float]]:
    """One block-by-block pass of the dense model: its input statistics, the pass's block forwards, and
    ``reduce`` of each block's Wanda score matrices. The scores are made and reduced one block at a time:
    holding every block's fp32 scores at once cost 0.8-1.1 GB per block on Qwen3-8B / s1.1-7B shapes
    (``benchmarks/hardware.py``), more than the bf16 model itself."""
    stats, forwards = dense_input_stats(ctx.model, ctx.samples, ctx.device, ctx.progress)
    lin = prunable_linears(ctx.model)
    names: dict[int, list[str]] = {}
    for name, block in module_blocks(ctx.model).items():
        names.setdefault(block, []).append(name)
    values = [reduce([wanda_scores(lin[n].weight, stats[n].norms) for n in names[b]]) for b in sorted(names)]
    return stats, forwards, values


def owl(ctx: AllocationContext) -> Allocation:
    """OWL from one block-by-block pass of the dense model; keeps the statistics it measured, which the
    method reads in the dense regime only."""
    stats, forwards, ratios = _dense_block_statistic(ctx, lambda scores: outlier_ratio(scores, ctx.knobs.owl_m))
    per_block = owl_sparsities(ratios, ctx.target, ctx.knobs.owl_lambda, block_weights(ctx.model))
    if min(per_block) < 0 or max(per_block) > MAX_SPARSITY:
        raise PrunescaleError(f"OWL sparsities leave [0, {MAX_SPARSITY}]: lower λ")
    return _finish(ctx, per_block, scores={"outlier_ratio": ratios}, input_stats=stats, block_forwards=forwards)


def dlp(ctx: AllocationContext) -> Allocation:
    """DLP: the median Wanda score of each block (a dense pass, as OWL's) → S ± α."""
    stats, forwards, medians = _dense_block_statistic(ctx, median_score)
    per_block = dlp_sparsities(medians, ctx.target, ctx.knobs.dlp_alpha, block_weights(ctx.model))
    return _finish(ctx, per_block, scores={"median_score": medians}, input_stats=stats, block_forwards=forwards)


def atp(ctx: AllocationContext) -> Allocation:
    """ATP: sparsity rising with depth in an arithmetic progression of step β, mean S; data-free."""
    return _finish(ctx, atp_sparsities(ctx.target, ctx.knobs.atp_beta, block_weights(ctx.model)))


def from_file(ctx: AllocationContext) -> Allocation:
    """A JSON object {module name or block index: sparsity}, checked for coverage, range and mean."""
    if not ctx.file:
        raise PrunescaleError("allocation file: give it as --allocation file:PATH")
    try:
        raw = read_allocation_file(ctx.file)  # the model-free checks, also run when the spec is validated
    except ValueError as exc:
        raise PrunescaleError(str(exc)) from None
    modules = module_blocks(ctx.model)
    n_blocks = len(decoder_blocks(ctx.model).layers)
    sparsity: dict[str, float] = {}
    for key, value in raw.items():
        if key.isdigit():
            if int(key) >= n_blocks:
                raise PrunescaleError(f"allocation file: block {key} does not exist (0..{n_blocks - 1})")
            sparsity.update({n: float(value) for n, b in modules.items() if b == int(key)})
        elif key in modules:
            sparsity[key] = float(value)
        else:
            raise PrunescaleError(f"allocation file: unknown module {key!r}")
    params = {n: m.weight.numel() for n, m in prunable_linears(ctx.model).items()}
    check_allocation(sparsity, params, ctx.target)
    per_block = [0.0] * n_blocks
    weights = block_weights(ctx.model)
    for n, s in sparsity.items():
        per_block[modules[n]] += s * params[n] / weights[modules[n]]
    return Allocation(sparsity, per_block)


def allocate(name: str, ctx: AllocationContext) -> Allocation:
    kind = name.split(":", 1)[0]
    allocator = ALLOCATIONS.get_or_fail(kind, ("file:PATH",))
    if kind == "file":
        ctx.file = name.split(":", 1)[1] if ":" in name else None
    alloc = allocator(ctx)
    if kind != "uniform" and len(alloc.per_block) > 1 and max(alloc.per_block) - min(alloc.per_block) < 1e-9:
        alloc.note = (f"allocation {name} gave every block the same sparsity (its block scores do not differ): "
                      "this run is uniform")
    return alloc
