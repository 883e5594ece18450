"""Pruning kernels: mask selection, Wanda scores, SparseGPT's error compensation."""

from __future__ import annotations

import pytest
import torch

from prunescale.prune.magnitude import magnitude_scores
from prunescale.prune.masks import check_nm, matrix_mask, nm_mask, row_mask
from prunescale.prune.sparsegpt import SparseGPT
from prunescale.prune.wanda import InputNorms, wanda_scores


@pytest.mark.parametrize("s", [0.0, 0.2, 0.25, 0.5, 0.7, 0.9])
def test_row_mask_is_exact_per_row_and_in_total(s):
    scores = torch.rand(48, 64, generator=torch.Generator().manual_seed(0))
    mask = row_mask(scores, s)
    per_row = mask.sum(1)
    k = int(s * 64)
    assert set(per_row.tolist()) <= {k, k + 1}
    assert int(mask.sum()) == round(s * 48 * 64)
    # within each row the pruned weights are exactly the lowest scores
    for r in range(48):
        pruned, kept = scores[r][mask[r]], scores[r][~mask[r]]
        if len(pruned) and len(kept):
            assert pruned.max() <= kept.min()


def test_row_mask_integer_case_is_exactly_uniform():
    mask = row_mask(torch.randn(10, 64), 0.5)
    assert (mask.sum(1) == 32).all()


def test_matrix_mask_prunes_globally_smallest():
    scores = torch.arange(12.0).reshape(3, 4)
    assert matrix_mask(scores, 0.5).flatten().tolist() == [True] * 6 + [False] * 6


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_keeps_n_largest_per_group(n, m):
    scores = torch.randn(16, 32)
    mask = nm_mask(scores, n, m)
    assert check_nm(mask, n, m)
    groups = scores.reshape(16, -1, m)
    kept_min = groups.masked_fill(mask.reshape(16, -1, m), float("inf")).min(-1).values
    pruned_max = groups.masked_fill(~mask.reshape(16, -1, m), float("-inf")).max(-1).values
    assert (pruned_max <= kept_min).all()


def test_nm_needs_divisible_width():
    with pytest.raises(ValueError):
        nm_mask(torch.randn(4, 6), 2, 4)


def test_wanda_scores_weight_by_input_norm():
    w = torch.tensor([[1.0, 1.0], [2.0, -3.0]])
    stats = InputNorms(2)
    stats.add_batch(torch.tensor([[[3.0, 0.0], [4.0, 1.0]]]))  # column norms 5 and 1
    assert stats.tokens == 2
    assert torch.allclose(wanda_scores(w, stats.norms()), torch.tensor([[5.0, 1.0], [10.0, 3.0]]))
    assert torch.equal(magnitude_scores(w), w.abs())


def _recon_error(w, w_hat, x):
    return float(torch.linalg.norm(x @ w.T - x @ w_hat.T))


@pytest.mark.parametrize("pattern", [dict(sparsity=0.5), dict(sparsity=0.7), dict(nm=(2, 4))])
def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda(pattern):
    g = torch.Generator().manual_seed(0)
    d_in, d_out, n = 96, 48, 2048
    # correlated inputs with uneven (log-normal, unordered) feature scales, as in real LLM activations
    mix = torch.randn(d_in, d_in, generator=g) / d_in**0.5 + torch.eye(d_in)
    x = (torch.randn(n, d_in, generator=g) @ mix) * torch.exp(0.7 * torch.randn(d_in, generator=g))
    w = torch.randn(d_out, d_in, generator=g)
    sgpt = SparseGPT(d_in)
    for chunk in x.split(256):
        sgpt.add_batch(chunk)
    w_sgpt, mask = sgpt.prune(w, pattern.get("sparsity"), pattern.get("nm"), blocksize=32)
    assert bool((w_sgpt[mask] == 0).all())
    if "nm" in pattern:
        assert check_nm(mask, *pattern["nm"])
    else:
        assert abs(float(mask.float().mean()) - pattern["sparsity"]) < 1e-3
    norms = InputNorms(d_in)
    norms.add_batch(x)
    nm = pattern.get("nm")
    sel = (lambda s: nm_mask(s, *nm)) if nm else (lambda s: row_mask(s, pattern["sparsity"]))
    w_mag = w.masked_fill(sel(w.abs()), 0)
    w_wanda = w.masked_fill(sel(wanda_scores(w, norms.norms())), 0)
    e_sgpt, e_mag, e_wanda = (_recon_error(w, v, x) for v in (w_sgpt, w_mag, w_wanda))
    assert e_sgpt < e_wanda < e_mag


def test_sparsegpt_hessian_is_a_running_mean():
    x = torch.randn(100, 8)
    a, b = SparseGPT(8), SparseGPT(8)
    a.add_batch(x)
    for chunk in x.split(7):
        b.add_batch(chunk)
    assert torch.allclose(a.H, b.H, atol=1e-5)
    assert torch.allclose(a.H, 2 * x.T @ x / 100, atol=1e-5)
    a.free()
    assert a.H is None


def test_selection_matches_a_stable_sort_including_ties():
    """The kthvalue-based selection picks exactly what a stable argsort would, ties by column index."""
    from prunescale.prune.masks import lowest, matrix_mask, row_mask

    g = torch.Generator().manual_seed(3)
    for trial in range(60):
        rows, cols = torch.randint(1, 30, (2,), generator=g).tolist()
        tied = torch.randint(0, 4, (rows, cols), generator=g).float()
        scores = tied if trial % 2 else torch.rand(rows, cols, generator=g)
        order = torch.argsort(scores, dim=1, stable=True)
        for k in range(cols + 1):
            ref = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, order[:, :k], True)
            assert torch.equal(lowest(scores, k), ref)
        for s in (0.1, 0.5, 0.9):
            k = round(s * scores.numel())
            flat = torch.zeros(scores.numel(), dtype=torch.bool)
            flat[torch.argsort(scores.flatten(), stable=True)[:k]] = True
            assert torch.equal(matrix_mask(scores, s), flat.view_as(scores))
            assert int(row_mask(scores, s).sum()) == round(s * rows * cols)


def test_sparsegpt_says_when_it_raised_the_damping():
    """A Hessian that 1 % damping leaves indefinite takes 10 %: the kernel says so (the manifest records
    it under run.percdamp_raised), instead of the manifest claiming 0.01."""
    from prunescale.prune.sparsegpt import SparseGPT

    st = SparseGPT(2)
    st.H = torch.tensor([[1.0, 1.02], [1.02, 1.0]])  # eigenvalues 2.02 and −0.02
    st.tokens = 1
    st.prune(torch.ones(3, 2), sparsity=0.5, percdamp=0.01)
    assert st.percdamp_used == pytest.approx(0.1)
    st.H = torch.eye(2)
    st.prune(torch.ones(3, 2), sparsity=0.5, percdamp=0.01)
    assert st.percdamp_used == 0.01
