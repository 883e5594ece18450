"""Quantize every Linear of the decoder blocks of a (possibly pruned) model in place: RTN or GPTQ.

Declared in :data:`prunescale.registry.QUANTIZERS`. The weights that are exactly zero when quantization
starts are the pruning mask: they stay exactly zero (checked after every matrix). GPTQ runs block by block
through the same runner as pruning (:func:`~prunescale.prune.block_runner.for_each_block`): one statistics
pass per block collects every Linear's Hessian on inputs that went through the already *quantized* blocks
before it, then the block's Linears are quantized and the block is run again for the next one. Embeddings
and the LM head stay in the model's dtype (as GPTQ's and llm-compressor's defaults leave them).

The model keeps dequantized weights in its own dtype (fake quantization): every engine loads it, and the
accuracy is that of the integer model up to the dtype's rounding of ``scale·(q − zero)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks, prunable_linears
from prunescale.prune.block_runner import for_each_block, hooked
from prunescale.prune.quantize import GPTQ, Quantized, rtn
from prunescale.prune.statistics import stat_hooks


def check_group_size(widths: dict[str, int], group_size: int) -> None:
    """A group size must divide the input width of every Linear it quantizes (one line naming the first
    that it does not)."""
    if group_size == -1:
        return
    odd = [n for n, w in widths.items() if w % group_size]
    if odd:
        raise PrunescaleError(f"group size {group_size} does not divide the input width {widths[odd[0]]} of "
                              f"{odd[0]}; choose a divisor of every width (or -1 for one group per row)")


def _write(lin: nn.Linear, mask: torch.Tensor, q: Quantized, name: str, qparams: dict | None) -> float:
    """Write the dequantized weights (and keep the group parameters in ``qparams`` when given: the packed
    format needs them); returns the squared error ‖Ŵ − W‖² (for the block's relative error)."""
    if qparams is not None:
        qparams[name] = (q.scale.detach().cpu(), q.zero.detach().cpu())
    with torch.no_grad():
        w = lin.weight.detach().float()
        new = q.weight.to(w.device)
        if bool(new[mask.to(new.device)].ne(0).any()):
            raise PrunescaleError(f"quantization revived pruned weights of {name}")
        err = float((new - w).pow(2).sum())
        lin.weight.copy_(new.to(lin.weight.dtype))
    return err


def _summary(model: nn.Module, errors: dict[int, tuple[float, float]], run: dict, settings: dict) -> dict:
    linears = prunable_linears(model)
    zeros = sum(int((m.weight == 0).sum()) for m in linears.values())
    params = sum(m.weight.numel() for m in linears.values())
    per_block = {str(i): (e / n) ** 0.5 if n else 0.0 for i, (e, n) in sorted(errors.items())}
    return {**settings, "realised_sparsity": zeros / max(1, params),
            "relative_error_per_block": {k: round(v, 6) for k, v in per_block.items()},
            "mean_relative_error": sum(per_block.values()) / max(1, len(per_block)), **run}


def quantize_rtn(model: nn.Module, samples: Sequence[torch.Tensor] = (), device: str = "cpu",
                 progress: bool = True, bits: int = 4, group_size: int = 128, qparams: dict | None = None) -> dict:
    """Round-to-nearest per group: no calibration data, no forward pass. ``qparams`` (when given) receives
    every Linear's ``(scale, zero)`` by its name in the model."""
    t0 = time.perf_counter()
    linears = prunable_linears(model)
    check_group_size({n: m.in_features for n, m in linears.items()}, group_size)
    blocks = decoder_blocks(model)
    errors: dict[int, tuple[float, float]] = {}
    for i, block in enumerate(blocks.layers):
        e = n = 0.0
        for sub, lin in block.named_modules():
            if isinstance(lin, nn.Linear):
                mask = lin.weight.detach() == 0
                n += float(lin.weight.detach().float().pow(2).sum())
                q = rtn(lin.weight.to(device), bits, group_size, mask.to(device))
                e += _write(lin, mask, q, blocks.name(i, sub), qparams)
        errors[i] = (e, n)
    settings = {"method": "rtn", "bits": bits, "group_size": group_size, "act_order": False}
    return _summary(model, errors, {"block_forwards": 0, "seconds": time.perf_counter() - t0}, settings)


def quantize_gptq(model: nn.Module, samples: Sequence[torch.Tensor], device: str = "cpu", progress: bool = True,
                  bits: int = 4, group_size: int = 128, act_order: bool = False, blocksize: int = 128,
                  percdamp: float = 0.01, static_groups: bool = True, qparams: dict | None = None) -> dict:
    """GPTQ block by block on the calibration samples (see the module docstring); ``static_groups`` is the
    kernel's (not a user option: the benchmark measures the IST-DASLab rule with it off); ``qparams`` as
    :func:`quantize_rtn`'s."""
    if not samples:
        raise PrunescaleError("gptq needs calibration samples")
    linears = prunable_linears(model)
    check_group_size({n: m.in_features for n, m in linears.items()}, group_size)
    blocks = decoder_blocks(model)
    errors: dict[int, tuple[float, float]] = {}
    raised: dict[str, float] = {}

    def visit(i: int, block: nn.Module, forward: Callable[..., None]) -> None:
        lins = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        stats = {n: GPTQ(m.in_features, device) for n, m in lins.items()}
        with hooked(stat_hooks(lins, stats)):
            forward(stop_after=list(lins.values()))
        e = n_ = 0.0
        for name, lin in lins.items():
            mask = lin.weight.detach() == 0
            q = stats[name].quantize(lin.weight, bits, group_size, act_order, mask, blocksize, percdamp,
                                     static_groups)
            if stats[name].percdamp_used != percdamp:
                raised[blocks.name(i, name)] = stats[name].percdamp_used
            n_ += float(lin.weight.detach().float().pow(2).sum())
            e += _write(lin, mask, q, blocks.name(i, name), qparams)
            stats[name].free()
        errors[i] = (e, n_)

    run = for_each_block(model, samples, visit, device, progress, "gptq")
    settings = {"method": "gptq", "bits": bits, "group_size": group_size, "act_order": act_order,
                "blocksize": blocksize, "percdamp": percdamp}
    return _summary(model, errors, {**run, "percdamp_raised": raised}, settings)
