"""LayerIF (Askari et al. 2025): per-block training quality from influence functions.

For training examples z_i and a validation set, restricted to block ℓ's Linear weights θ_ℓ:

    I_ℓ(z_i) = −∇L(val)ᵀ (H_ℓ + λ_ℓ I)⁻¹ ∇L(z_i)

with the DataInf closed form of the damped inverse Hessian built from the training gradients g_j,

    (H_ℓ + λI)⁻¹ v ≈ (1/n) Σ_j (1/λ) (v − (g_jᵀv) / (λ + ‖g_j‖²) g_j),

and λ_ℓ = 0.1 × the mean squared gradient entry of the block. Everything reduces to the Gram matrix
of the training gradients and their dot products with the validation gradient, so only those are kept.
Blocks with more than ``sketch_dim`` weights are count-sketched (a seeded hash-and-sign projection that
preserves dot products in expectation); the exact squared norms are kept for λ and the diagonal.

Sign: I < 0 means up-weighting z_i lowers the validation loss (a helpful example), as in Koh & Liang and
DataInf. The block score follows the LayerIF reference code (its "positive IF" rule, which keeps the
helpful, non-positive entries): S_ℓ = Σ_i min(I_ℓ(z_i), 0) ≤ 0. The allocator prunes higher-scoring
blocks more (AlphaPruning's linear map), so a block whose training examples help the validation loss
most (most negative S) is pruned least. Where no example is helpful for any block every S is 0 and the
allocation is uniform, which the run says (it used to sum the harmful, positive entries instead: with
all influences helpful, as on SmolLM2, every block scored 0 and fell back to uniform silently). Data
comes from the source's train and validation splits, never from reported test items.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rich.progress import track
from torch import nn

from prunescale.models.anatomy import decoder_blocks


def _block_weights(model: nn.Module) -> list[list[torch.Tensor]]:
    return [[m.weight for m in b.modules() if isinstance(m, nn.Linear)] for b in decoder_blocks(model).layers]


class _Sketch:
    """Count-sketch of one block's flattened gradient (seeded; regenerated, never stored whole)."""

    def __init__(self, dim: int, out_dim: int, seed: int) -> None:
        self.dim, self.out_dim, self.seed = dim, out_dim, seed

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        if self.dim <= self.out_dim:
            return flat
        g = torch.Generator().manual_seed(self.seed)
        bucket = torch.randint(0, self.out_dim, (self.dim,), generator=g)
        sign = torch.randint(0, 2, (self.dim,), generator=g, dtype=torch.int8).float() * 2 - 1
        return torch.zeros(self.out_dim).index_add_(0, bucket, flat * sign)


def _gradients(model: nn.Module, sample: torch.Tensor, sketches: list[_Sketch]) -> tuple[list, list]:
    """Sketched per-block gradients of one sample's LM loss, and their exact squared norms."""
    model.zero_grad(set_to_none=True)
    ids = sample.reshape(1, -1).to(next(model.parameters()).device)
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    flats, norms = [], []
    for weights, sketch in zip(_block_weights(model), sketches):
        flat = torch.cat([w.grad.detach().flatten().float() for w in weights])
        norms.append(float(flat @ flat))
        flats.append(sketch(flat.cpu()))  # the sketch's seeded hashes live on the CPU: same on every device
    return flats, norms


def layer_influence(
    model: nn.Module,
    train: Sequence[torch.Tensor],
    validation: Sequence[torch.Tensor],
    damping: float = 0.1,
    sketch_dim: int = 1 << 18,
    progress: bool = False,
) -> list[float]:
    """Σ of the helpful (non-positive) influences per block (see the module docstring)."""
    weights = _block_weights(model)
    dims = [sum(w.numel() for w in ws) for ws in weights]
    sketches = [_Sketch(d, sketch_dim, 1000 + i) for i, d in enumerate(dims)]
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    try:
        v_sum = None
        for s in track(validation, description="LayerIF validation", disable=not progress):
            flats, _ = _gradients(model, s, sketches)
            v_sum = flats if v_sum is None else [a + b for a, b in zip(v_sum, flats)]
        v = [x / len(validation) for x in v_sum]
        per_example, sq = [], []
        for s in track(train, description="LayerIF train", disable=not progress):
            flats, norms = _gradients(model, s, sketches)
            per_example.append(flats)
            sq.append(norms)
    finally:
        model.zero_grad(set_to_none=True)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    n = len(train)
    scores = []
    for b, d in enumerate(dims):
        g = torch.stack([ex[b] for ex in per_example]).double()  # n × k
        exact_sq = torch.tensor([s[b] for s in sq], dtype=torch.float64)
        lam = damping * float(exact_sq.mean()) / d
        gram = g @ g.T
        gram.diagonal().copy_(exact_sq)
        a = g @ v[b].double()  # g_jᵀ v
        coef = a / (lam + exact_sq)  # (g_jᵀ v) / (λ + ‖g_j‖²)
        influence = -(a - (coef @ gram) / n) / lam  # I_i for every training example i
        scores.append(float(influence.clamp(max=0).sum()))
    return scores
