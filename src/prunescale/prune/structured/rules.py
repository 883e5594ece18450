"""Layer-removal rules: which blocks to drop (and, for LaCo, what to merge first). Each is declared by
name, with what it reads, in :data:`prunescale.registry.REMOVALS`.

Every rule returns a :class:`RemovalPlan` in the original block numbering together with the scores that
chose it, so manifests can show *why* those blocks went.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks
from prunescale.prune.structured.scores import angular_distance, block_influence, boundary_cosines


@dataclass
class RemovalPlan:
    indices: list[int]  # original numbering, sorted
    scores: dict[str, list[float]] = field(default_factory=dict)
    merged: dict[int, list[int]] = field(default_factory=dict)  # LaCo: kept block → blocks folded into it
    note: str = ""


@dataclass
class RuleInput:
    """Everything a rule may need; rules take what they use."""

    model: nn.Module
    n: int
    samples: Sequence[torch.Tensor] = ()
    device: str = "cpu"
    seed: int = 0
    layers: Sequence[int] = ()
    keep_last: bool = False
    laco_threshold: float = 0.9
    laco_span: int = 1
    shortgpt_last: str = "never"  # never: blocks 0..L−2 only (LPHIS) | normed: ShortGPT's own code


def _n_blocks(model: nn.Module) -> int:
    return len(decoder_blocks(model).layers)


def shortgpt(inp: RuleInput) -> RemovalPlan:
    """Remove the n blocks with the lowest Block Influence (they change the hidden state least).

    ``never`` (default): as LPHIS (keyu-wang-2002/Layer-Pruning-Harms-Inference-Scaling, ``lib/prune.py``,
    whose ShortGPT the reference study compares against) and other layer-pruning code scores it: from the
    inputs of blocks 0 … L−1, so only blocks 0 … L−2 are scored and the last block is never a candidate.
    ``normed``: as ShortGPT's own code (icip-cas/ShortGPT): every block, the last one against the final
    normed hidden state. (prunescale used to score the last block against its un-normed output, which can
    make the last blocks look redundant; that rule is gone.)"""
    if inp.shortgpt_last not in ("never", "normed"):
        raise PrunescaleError(f"shortgpt_last must be never or normed, got {inp.shortgpt_last!r}")
    normed = inp.shortgpt_last == "normed"
    bi = block_influence(boundary_cosines(inp.model, inp.samples, 1, inp.device, final_norm=normed))
    candidates = range(len(bi)) if normed else range(len(bi) - 1)
    if inp.n > len(candidates):
        raise PrunescaleError(f"ShortGPT can remove at most {len(candidates)} blocks here (the last block is never a "
                         "candidate; shortgpt_last: normed allows it)")
    order = sorted(candidates, key=lambda i: (bi[i], i))
    scores = bi if normed else bi[:-1]
    return RemovalPlan(sorted(order[: inp.n]), {"block_influence": scores})


def angular(inp: RuleInput) -> RemovalPlan:
    """Remove the run of n consecutive blocks whose input and output are closest in angle, measured at the
    last token of each sample with the final boundary after the model's norm (Gromov et al. 2024)."""
    cos = boundary_cosines(inp.model, inp.samples, inp.n, inp.device, last_token=True, final_norm=True)
    dist = angular_distance(cos, inp.n)
    start = min(range(len(dist)), key=lambda i: (dist[i], i))
    return RemovalPlan(list(range(start, start + inp.n)), {f"angular_distance_n{inp.n}": dist})


def reverse(inp: RuleInput) -> RemovalPlan:
    """Remove the last n blocks (with ``keep_last``, the n blocks just before the last one)."""
    end = _n_blocks(inp.model) - (1 if inp.keep_last else 0)
    return RemovalPlan(list(range(end - inp.n, end)))


def random_rule(inp: RuleInput) -> RemovalPlan:
    """n blocks drawn uniformly with the seed (an ablation baseline)."""
    return RemovalPlan(sorted(random.Random(inp.seed).sample(range(_n_blocks(inp.model)), inp.n)))


def explicit(inp: RuleInput) -> RemovalPlan:
    """Exactly the given block indices."""
    return RemovalPlan(sorted(inp.layers))


@contextmanager
def _without(model: nn.Module, drop: Sequence[int]) -> Iterator[None]:
    """Temporarily run the model without some blocks (for similarity checks; restored on exit)."""
    blocks = decoder_blocks(model)
    parent = model.get_submodule(blocks.path.rsplit(".", 1)[0]) if "." in blocks.path else model
    attr = blocks.path.rsplit(".", 1)[-1]
    original = getattr(parent, attr)
    config = getattr(model, "config", None)
    types = getattr(config, "layer_types", None)
    setattr(parent, attr, nn.ModuleList([b for i, b in enumerate(original) if i not in set(drop)]))
    if types is not None:  # the model picks each layer's mask by position in this list
        config.layer_types = [t for i, t in enumerate(types) if i not in set(drop)]
    try:
        yield
    finally:
        setattr(parent, attr, original)
        if types is not None:
            config.layer_types = types


LACO_SAMPLES = 16


@torch.no_grad()
def _final_hidden(model: nn.Module, samples: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    device = next(model.parameters()).device
    return [model(input_ids=s.reshape(1, -1).to(device), output_hidden_states=True, use_cache=False)
            .hidden_states[-1][0].float().cpu() for s in samples]


def _similarity(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float(torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1).sum()) for x, y in zip(a, b))
    return num / sum(x.shape[0] for x in a)


@torch.no_grad()
def laco(inp: RuleInput) -> RemovalPlan:
    """LaCo (Yang et al. 2024): from the top down, fold each block's next ``span`` blocks into it
    (θ_ℓ += Σ_k (θ_{ℓ+k} − θ_ℓ)) and keep the merge only if the final hidden states stay within
    ``threshold`` cosine similarity of the original model's. Stops after removing n blocks; the merged
    weights are left in the model, the folded blocks are listed for removal."""
    model, samples = inp.model, list(inp.samples)[:LACO_SAMPLES]
    model.to(inp.device)  # whole-model forwards: LaCo compares final hidden states
    try:
        return _laco(model, samples, inp)
    finally:
        model.to("cpu")


def _laco(model: nn.Module, samples: list[torch.Tensor], inp: RuleInput) -> RemovalPlan:
    layers = decoder_blocks(model).layers
    reference = _final_hidden(model, samples)
    removed: list[int] = []
    merged: dict[int, list[int]] = {}
    sims: list[float] = []
    pos = len(layers) - 1 - inp.laco_span
    while pos >= 0 and len(removed) < inp.n:
        span = min(inp.laco_span, inp.n - len(removed))
        alive = [i for i in range(len(layers)) if i not in removed]
        target_pos = alive.index(pos) if pos in alive else None
        if target_pos is None or target_pos + span >= len(alive):
            pos -= 1
            continue
        folded = alive[target_pos + 1 : target_pos + 1 + span]
        params = list(layers[pos].parameters())
        backup = [p.detach().clone() for p in params]
        folded_params = [list(layers[j].parameters()) for j in folded]
        for idx, p in enumerate(params):
            p.copy_(backup[idx] + sum(fp[idx] - backup[idx] for fp in folded_params))
        with _without(model, removed + folded):
            sim = _similarity(_final_hidden(model, samples), reference)
        sims.append(sim)
        if sim >= inp.laco_threshold:
            removed += folded
            merged.setdefault(pos, []).extend(folded)
            pos -= span + 1
        else:
            for p, b in zip(params, backup):
                p.copy_(b)
            pos -= 1
    note = f"similarity on {len(samples)} calibration samples"
    if len(removed) < inp.n:
        note += f"; threshold allowed only {len(removed)} of {inp.n} removals"
    return RemovalPlan(sorted(removed), {"laco_similarity_tried": sims}, merged, note)
