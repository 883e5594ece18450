"""One-shot unstructured pruning of a whole model: Magnitude, Wanda, SparseGPT, with or without N:M.

The engine takes a per-module sparsity mapping (module name → sparsity), so any allocation plugs in;
kernels stay pure (:mod:`masks`, :mod:`magnitude`, :mod:`wanda`, :mod:`sparsegpt`), and the block
runner (:mod:`sequential`) owns hooks and devices. After pruning, the realised sparsity of every
module and of the whole model is measured from the weights themselves and checked against the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks, prunable_linears, sequential_groups
from prunescale.prune.magnitude import magnitude_scores
from prunescale.prune.masks import select
from prunescale.prune.sequential import for_each_block, hooked
from prunescale.prune.sparsegpt import SparseGPT
from prunescale.prune.wanda import InputNorms, wanda_scores

TOLERANCE = 0.005

PruneFn = Callable[..., dict]
METHODS: dict[str, PruneFn] = {}


def method(name: str) -> Callable[[PruneFn], PruneFn]:
    """Register a pruning method under ``name`` (the CLI's ``--method`` values come from here)."""

    def deco(fn: PruneFn) -> PruneFn:
        METHODS[name] = fn
        return fn

    return deco


@dataclass
class Pattern:
    """What to prune: a sparsity per module, or a fixed N:M pattern for all of them."""

    sparsity: dict[str, float] = field(default_factory=dict)
    nm: tuple[int, int] | None = None
    group: str = "row"  # comparison group for magnitude: row | matrix

    def target(self, name: str) -> float:
        return 1 - self.nm[0] / self.nm[1] if self.nm else self.sparsity[name]


def uniform(model: nn.Module, sparsity: float) -> dict[str, float]:
    return {name: sparsity for name in prunable_linears(model)}


def _apply(linear: nn.Linear, mask: torch.Tensor, new_weight: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        if new_weight is not None:
            linear.weight.copy_(new_weight.to(linear.weight.device))
        linear.weight[mask.to(linear.weight.device)] = 0


@method("magnitude")
def prune_magnitude(model: nn.Module, pattern: Pattern, samples: Sequence[torch.Tensor] = (), **_: object) -> dict:
    """|W| per row (default) or per matrix; needs no calibration data."""
    for name, lin in prunable_linears(model).items():
        target = None if pattern.nm else pattern.sparsity[name]
        _apply(lin, select(magnitude_scores(lin.weight), target, pattern.nm, pattern.group))
    return {"block_forwards": 0}


def _stat_hooks(linears: Mapping[str, nn.Linear], stats: Mapping[str, InputNorms | SparseGPT]) -> list:
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


def dense_input_norms(
    model: nn.Module, samples: Sequence[torch.Tensor], device: str = "cpu", progress: bool = True
) -> tuple[dict[str, torch.Tensor], int]:
    """‖X_j‖ of every prunable Linear on the *dense* model (one block-by-block pass, nothing pruned).

    Shared by OWL (which needs every block's Wanda scores before any block is pruned) and Wanda with
    ``sequential=False``; returns the norms and the number of block forwards it cost.
    """
    blocks = decoder_blocks(model)
    norms: dict[str, torch.Tensor] = {}

    def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        stats = {n: InputNorms(m.in_features, device) for n, m in linears.items()}
        with hooked(_stat_hooks(linears, stats)):
            forward(stop_after=list(linears.values()))
        for n in linears:
            norms[blocks.name(i, n)] = stats[n].norms().cpu()

    run = for_each_block(model, samples, visit, device, progress, "calibration")
    return norms, run["block_forwards"]


@method("wanda")
def prune_wanda(
    model: nn.Module,
    pattern: Pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    input_norms: Mapping[str, torch.Tensor] | None = None,
    sequential: bool = True,
    **_: object,
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
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        stats = {n: InputNorms(m.in_features, device) for n, m in linears.items()}
        with hooked(_stat_hooks(linears, stats)):
            forward(stop_after=list(linears.values()))
        for n, lin in linears.items():
            full = blocks.name(i, n)
            target = None if pattern.nm else pattern.sparsity[full]
            _apply(lin, select(wanda_scores(lin.weight, stats[n].norms()), target, pattern.nm, "row"))

    return {**for_each_block(model, samples, visit, device, progress, "wanda"), "activations": "sequential"}


@method("sparsegpt")
def prune_sparsegpt(
    model: nn.Module,
    pattern: Pattern,
    samples: Sequence[torch.Tensor],
    device: str = "cpu",
    progress: bool = True,
    sequential: bool = True,
    blocksize: int = 128,
    percdamp: float = 0.01,
    **_: object,
) -> dict:
    """OBS-style pruning with error compensation; with ``sequential`` the Linears of a block are pruned
    in execution order (q,k,v → o → gate,up → down) so later ones calibrate on pruned inputs."""
    blocks = decoder_blocks(model)

    def visit(i: int, block: nn.Module, forward: Callable[[], None]) -> None:
        linears = {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        groups = sequential_groups(list(linears)) if sequential else [list(linears)]
        for group in groups:
            stats = {n: SparseGPT(linears[n].in_features, device) for n in group}
            with hooked(_stat_hooks(linears, stats)):
                forward(stop_after=[linears[n] for n in group])
            for n in group:
                full = blocks.name(i, n)
                target = None if pattern.nm else pattern.sparsity[full]
                new, mask = stats[n].prune(linears[n].weight, target, pattern.nm, blocksize, percdamp)
                _apply(linears[n], mask, new)
                stats[n].free()

    return {**for_each_block(model, samples, visit, device, progress, "sparsegpt"), "activations": "sequential"}


def realised_sparsity(model: nn.Module) -> dict[str, dict]:
    """Per prunable module: parameter count and fraction of exactly-zero weights."""
    out = {}
    for name, lin in prunable_linears(model).items():
        w = lin.weight
        out[name] = {"params": w.numel(), "zeros": int((w == 0).sum()), "sparsity": float((w == 0).sum()) / w.numel()}
    return out


def global_sparsity(per_module: Mapping[str, Mapping]) -> float:
    """Parameter-weighted sparsity over all prunable modules."""
    total = sum(m["params"] for m in per_module.values())
    return sum(m["zeros"] for m in per_module.values()) / max(1, total)


def check_realised(model: nn.Module, pattern: Pattern, tol: float = TOLERANCE) -> dict:
    """Measure what pruning did and refuse results that miss the request (per module and globally)."""
    per = realised_sparsity(model)
    bad = []
    for name, m in per.items():
        want = pattern.target(name)
        m["target"] = want
        if pattern.nm:
            n, m_ = pattern.nm
            kept = (prunable_linears(model)[name].weight != 0).reshape(-1, m_).sum(-1)
            if bool((kept > n).any()):  # extra zeros (dead inputs) are fine, extra weights are not
                bad.append(f"{name}: not a valid {n}:{m_} pattern")
        elif abs(m["sparsity"] - want) > tol:
            bad.append(f"{name}: realised {m['sparsity']:.4f} vs target {want:.4f}")
    realised = global_sparsity(per)
    total = sum(m["params"] for m in per.values())
    target = sum(pattern.target(n) * m["params"] for n, m in per.items()) / max(1, total)
    if not pattern.nm and abs(realised - target) > tol:
        bad.append(f"global: realised {realised:.4f} vs target {target:.4f}")
    if bad:
        raise PrunescaleError(f"realised sparsity misses the request ({len(bad)} problems, first: {bad[0]})")
    return {"target_global": target, "realised_global": realised, "per_module": per}


def prune_model(
    model: nn.Module,
    method_name: str,
    pattern: Pattern,
    samples: Sequence[torch.Tensor] = (),
    **options: object,
) -> dict:
    """Prune ``model`` in place with a registered method, then check and return the realised sparsity."""
    if method_name not in METHODS:
        raise PrunescaleError(f"unknown method {method_name!r}; choose one of {', '.join(METHODS)}")
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
    if method_name != "magnitude" and not samples and options.get("input_norms") is None:
        raise PrunescaleError(f"{method_name} needs calibration samples")
    stats = METHODS[method_name](model, pattern, samples, **options)
    return {**check_realised(model, pattern), "run": stats}
