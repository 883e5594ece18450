"""Weight quantization: the RTN/GPTQ kernels on random matrices and the model runner on random Llama/Qwen2/Qwen3
blocks (levels per group, pruned zeros kept, GPTQ below RTN on the same calibration, act-order undone)."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import prunable_linears
from prunescale.prune.quantization import quantize_gptq, quantize_rtn
from prunescale.prune.quantize import GPTQ, fake_quantize, group_params, rtn


def _levels_per_group(w: torch.Tensor, group: int) -> int:
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    return max(len(torch.unique(g[r, k])) for r in range(rows) for k in range(cols // group))


def _recon(w: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    return float(((x @ w.T) - (x @ w_hat.T)).pow(2).sum())


def _correlated_inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Low-rank activations plus noise (as a transformer's are): correlated inputs are where GPTQ's error
    updates pay off (on i.i.d. inputs it is no better than rounding)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) @ torch.randn(8, d, generator=g) + 0.3 * torch.randn(n, d, generator=g)


def test_rtn_is_the_direct_per_group_computation():
    torch.manual_seed(0)
    w = torch.randn(8, 64)
    out = rtn(w, 4, 16)
    expected = torch.empty_like(w)
    for r in range(8):
        for k in range(4):
            x = w[r, 16 * k:16 * (k + 1)]
            lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
            scale = (hi - lo) / 15
            zero = round(-lo / scale)
            q = torch.clamp(torch.round(x / scale) + zero, 0, 15)
            expected[r, 16 * k:16 * (k + 1)] = scale * (q - zero)
    assert torch.allclose(out.weight, expected, atol=1e-6)
    assert _levels_per_group(out.weight, 16) <= 16
    codes = out.codes()
    assert int(codes.min()) >= 0 and int(codes.max()) <= 15


@pytest.mark.parametrize("bits", [8, 4, 3, 2])
def test_zero_is_exactly_representable_and_pruned_weights_stay_zero(bits):
    torch.manual_seed(1)
    w = torch.randn(16, 64) + 0.5  # mostly positive groups: the range must still be widened to hold 0
    mask = torch.rand_like(w) < 0.5
    w[mask] = 0
    for out in (rtn(w, bits, 32, mask).weight, _gptq(w, _correlated_inputs(256, 64), bits, 32, mask=mask),
                _gptq(w, _correlated_inputs(256, 64), bits, 32, mask=mask, static=False)):
        assert bool((out[mask] == 0).all())
        assert _levels_per_group(out, 32) <= 2**bits
    scale, zero = group_params(torch.tensor([[0.0, 0.0, 0.0]]), bits)  # an all-zero group
    assert float(fake_quantize(torch.zeros(1, 3), scale, zero, bits).abs().sum()) == 0


def _gptq(w, x, bits, group, act_order=False, mask=None, static=True):
    q = GPTQ(w.shape[1])
    q.add_batch(x)
    return q.quantize(w, bits, group, act_order, mask, static_groups=static).weight


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("group", [16, -1])
def test_gptq_reconstructs_better_than_rtn_on_the_same_calibration(act_order, group, static):
    torch.manual_seed(2)
    w = torch.randn(32, 64)
    x = _correlated_inputs(512, 64)
    g = 64 if group == -1 else group
    gptq = _gptq(w, x, 3, group, act_order, static=static)
    assert _recon(w, gptq, x) < 0.5 * _recon(w, rtn(w, 3, group).weight, x)
    assert _levels_per_group(gptq, g) <= 8


def test_act_order_is_undone_and_groups_stay_contiguous():
    """With act-order each original contiguous group keeps its own grid: every value of a group is one of
    its 2^b levels computed from the original columns (a permutation left in place would mix groups)."""
    torch.manual_seed(3)
    w = torch.randn(8, 64)
    x = _correlated_inputs(256, 64, seed=3)
    q = GPTQ(64)
    q.add_batch(x)
    out = q.quantize(w, 4, 16, act_order=True)
    scale, zero = group_params(w.reshape(8, 4, 16), 4)
    grid = scale * (torch.arange(16).view(1, 1, 16) - zero)  # (rows, groups, levels)
    vals = out.weight.reshape(8, 4, 16)
    dist = (vals.unsqueeze(-1) - grid.unsqueeze(2)).abs().amin(-1)
    assert float(dist.max()) < 1e-5
    # the permutation was not left applied: the result is close to w column for column
    assert float((out.weight - w).abs().mean()) < 0.2 * float(w.abs().mean())


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_model_quantization_on_random_blocks(arch):
    """On a random model of each family, pruned first: zeros kept, ≤ 2^b levels per group in every Linear,
    GPTQ's block outputs closer to the unquantized model's than RTN's."""
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    samples = [torch.randint(2, 120, (32,)) for _ in range(8)]
    base = tiny_model(arch)
    prune_model(base, "magnitude", Pattern(sparsity=uniform(base, 0.5)))
    masks = {n: lin.weight == 0 for n, lin in prunable_linears(base).items()}
    ref_logits = torch.stack([base(s.view(1, -1)).logits[0] for s in samples]).detach()
    errors = {}
    for method in ("rtn", "gptq"):
        model = tiny_model(arch)
        model.load_state_dict(base.state_dict())
        if method == "rtn":
            summary = quantize_rtn(model, bits=3, group_size=16)
        else:
            summary = quantize_gptq(model, samples, bits=3, group_size=16, progress=False)
        for n, lin in prunable_linears(model).items():
            assert bool((lin.weight[masks[n]] == 0).all()), n
            assert _levels_per_group(lin.weight.detach(), 16) <= 8, n
        assert summary["realised_sparsity"] >= 0.5 - 1e-3
        assert set(summary["relative_error_per_block"]) == {"0", "1"}
        logits = torch.stack([model(s.view(1, -1)).logits[0] for s in samples]).detach()
        errors[method] = float((logits - ref_logits).pow(2).mean())
    assert errors["gptq"] < errors["rtn"]


def test_a_group_size_that_does_not_divide_a_width_is_refused():
    with pytest.raises(PrunescaleError, match="does not divide the input width"):
        quantize_rtn(tiny_model("llama"), bits=4, group_size=48)


@pytest.mark.slow
def test_gptq_with_act_order_is_bit_identical_to_llm_compressor(tmp_path):
    """The reference run (benchmarks/reference, `make llmc-venv`; skipped without it): llm-compressor's GPTQ
    takes every group's parameters before any update, as ours does (static groups), so on the same
    calibration tokens the two give the very same weights, with and without act-order, and per row."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.reference.llmc import DEFAULT_VENV, available, run_reference

    venv = Path(__file__).resolve().parent.parent / DEFAULT_VENV
    if not available(venv):
        pytest.skip("no llm-compressor venv (make llmc-venv)")
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    samples = [torch.randint(2, 120, (32,), generator=torch.Generator().manual_seed(i)) for i in range(8)]
    for group, bits, act_order in ((32, 4, True), (32, 4, False), (-1, 3, False)):
        ref = run_reference(tmp_path / "m", samples, bits, group, act_order, tmp_path / f"ref{group}", venv)
        reference = dict(type(model).from_pretrained(ref["out_dir"]).named_modules())
        ours = tiny_model("llama")
        ours.load_state_dict(model.state_dict())
        quantize_gptq(ours, samples, bits=bits, group_size=group, act_order=act_order, progress=False)
        for name, lin in prunable_linears(ours).items():
            assert torch.equal(lin.weight, reference[name].weight), (group, name)
