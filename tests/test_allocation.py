"""Layer-wise sparsity allocation: analytic properties of every map, the allocators and their errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.api import prune
from prunescale.cli import app
from prunescale.config import PruneSpec
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks
from prunescale.prune.allocation.allocate import linear_ratios, rescale_to_mean, weighted_mean
from prunescale.prune.allocation.alpha import hill_alpha
from prunescale.prune.allocation.owl import outlier_ratio, owl_sparsities
from prunescale.prune.allocation.registry import AllocationContext, allocate, block_weights


def test_equal_scores_give_uniform():
    assert linear_ratios([2.0, 2.0, 2.0], 0.3) == [1.0, 1.0, 1.0]
    assert rescale_to_mean([1.0] * 4, [1] * 4, 0.5) == pytest.approx([0.5] * 4)
    assert owl_sparsities([0.1, 0.1], 0.5, 0.08, [1, 1]) == [0.5, 0.5]


@pytest.mark.parametrize("target", [0.1, 0.5, 0.7, 0.9])
def test_rescale_keeps_the_weighted_mean_even_when_clipping(target):
    ratios = linear_ratios([1.0, 5.0, 2.0, 9.0], 0.9)
    weights = [10, 30, 20, 40]
    values = rescale_to_mean(ratios, weights, target)
    assert weighted_mean(values, weights) == pytest.approx(target, abs=1e-6)
    assert all(0 <= v <= 0.99 for v in values)


def test_linear_map_range_and_direction():
    r = linear_ratios([3.0, 1.0, 2.0], 0.3)
    assert r == pytest.approx([1.3, 0.7, 1.0])
    assert linear_ratios([3.0, 1.0, 2.0], 0.3, higher_prunes_more=False) == pytest.approx([0.7, 1.3, 1.0])


def test_owl_range_centre_and_direction():
    ratios = [0.01, 0.05, 0.03, 0.02]
    s = owl_sparsities(ratios, 0.5, 0.08, [1, 1, 1, 1])
    assert max(s) - min(s) == pytest.approx(0.16)
    assert sum(s) / 4 == pytest.approx(0.5)
    order = sorted(range(4), key=lambda i: ratios[i])
    assert [s[i] for i in order] == sorted(s, reverse=True)  # more outliers → less pruning
    with pytest.raises(PrunescaleError):
        owl_sparsities(ratios, 0.05, 0.08, [1] * 4)


def test_outlier_ratio():
    import torch

    scores = [torch.ones(10, 10), torch.tensor([[100.0]])]
    assert outlier_ratio(scores, 5.0) == pytest.approx(1 / 101)


@pytest.mark.parametrize("rule", ["peak", "scan"])
@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5, 6.0])
def test_hill_recovers_power_law_alpha(alpha, rule):
    rng = np.random.default_rng(int(alpha * 10))
    tail = (1 - rng.random(3000)) ** (-1 / (alpha - 1))
    bulk = rng.random(800) * 0.9
    est, x_min = hill_alpha(np.concatenate([tail, bulk]), rule)
    assert abs(est - alpha) / alpha < 0.10
    assert 0.9 <= x_min <= 1.5


def test_a_spectrum_with_nothing_near_its_peak_is_an_error_not_nan():
    eigs = np.concatenate([[1e-20], np.linspace(14, 15, 50)])  # 100 bins of 21 decades: the peak bin is empty
    with pytest.raises(ValueError, match="x_min window"):
        hill_alpha(eigs)


def test_peak_rule_searches_only_up_to_1_5_times_the_spectral_peak():
    """AlphaPruning's reference picks x_min near the ESD peak, not over every tail: a spectrum whose
    best KS tail starts far above its peak gets a different x_min from the two rules."""
    from prunescale.prune.allocation.alpha import esd_peak

    rng = np.random.default_rng(0)
    bulk = 10 ** rng.normal(0.0, 0.05, 3000)  # a sharp peak at 1
    tail = 3 * (1 - rng.random(400)) ** (-1 / 2.0)  # a power law (α = 3) from 3 on
    eigs = np.concatenate([bulk, tail])
    peak = esd_peak(eigs)
    alpha_p, x_p = hill_alpha(eigs, "peak")
    alpha_s, x_s = hill_alpha(eigs, "scan")
    assert 0.7 < peak < 1.3 and x_p <= 1.5 * peak < x_s
    assert abs(alpha_s - 3.0) < 0.4 and alpha_p != alpha_s


def _ctx(model, target=0.5, **kw):
    return AllocationContext(model, target, **kw)


def test_alpha_allocator_prunes_heavy_alpha_blocks_more(tmp_path: Path):
    model = tiny_model("llama", layers=3, vocab=60)
    alloc = allocate("alpha", _ctx(model, cache=tmp_path))
    alphas = alloc.scores["alpha"]
    assert weighted_mean(alloc.per_block, block_weights(model)) == pytest.approx(0.5, abs=1e-4)
    order = sorted(range(3), key=lambda i: alphas[i])
    assert [alloc.per_block[i] for i in order] == sorted(alloc.per_block)
    assert list((tmp_path / "alpha").iterdir())  # cached by weight hash
    assert allocate("alpha", _ctx(model, cache=tmp_path)).per_block == alloc.per_block


def test_owl_shares_its_pass_in_the_dense_regime(tmp_path: Path, saved_tiny: Path):
    """With ``sequential`` off, Wanda + OWL costs the same block forwards as Wanda + uniform: OWL's dense
    pass is Wanda's pass (tests/test_regime.py: the sequential regime makes a pass of its own)."""
    forwards = {}
    for allocation in ("uniform", "owl"):
        out = tmp_path / allocation
        prune(PruneSpec(model=str(saved_tiny), method="wanda", sparsity=0.5, allocation=allocation, sequential=False,
                        calibration={"source": "tiny", "nsamples": 4, "seqlen": 32}, out=out),
              log=lambda _m: None, progress=False)
        forwards[allocation] = json.loads((out / "pruning_manifest.json").read_text())["block_forwards"]
    n_blocks = 2
    assert forwards == {"uniform": 2 * n_blocks - 1, "owl": 2 * n_blocks - 1}


def test_from_file(tmp_path: Path):
    model = tiny_model("qwen3", layers=2, vocab=60)
    names = [f"model.layers.0.{n}" for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                             "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    good = tmp_path / "a.json"
    good.write_text(json.dumps({"1": 0.6, **{n: 0.4 for n in names}}))
    alloc = allocate(f"file:{good}", _ctx(model))
    assert alloc.per_block == pytest.approx([0.4, 0.6])
    assert alloc.sparsity["model.layers.1.mlp.up_proj"] == 0.6
    cases = {
        '{"0": 0.5}': "no sparsity for",
        '{"0": 0.5, "1": 1.2}': "outside [0, 1)",
        '{"0": 0.5, "7": 0.5}': "does not exist",
        '{"0": 0.5, "model.layers.9.x": 0.5}': "unknown module",
        '{"0": 0.3, "1": 0.3}': "differs from the target",
        "[0.5]": "non-empty JSON object",
        "nonsense": "not valid JSON",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(PrunescaleError, match=re.escape(message)):
            allocate(f"file:{bad}", _ctx(model))


runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--allocation", "owlish", "--sparsity", "0.5"], "unknown allocation"),
        (["--allocation", "owl", "--nm", "2:4"], "cannot take an allocation"),
        (["--allocation", "owl", "--sparsity", "0.05"], "λ < S"),
        (["--allocation", "owl", "--sparsity", "0.95"], "S + λ < 1"),
        (["--allocation", "alpha", "--sparsity", "0.5", "--epsilon", "1.5"], "ε must be in (0, 1)"),
        (["--allocation", "file:/no/such.json", "--sparsity", "0.5"], "not found"),
        (["--allocation", "file:", "--sparsity", "0.5"], "unknown allocation"),
    ],
)
def test_bad_allocation_input(saved_tiny: Path, tmp_path: Path, args, message):
    out = tmp_path / "o"
    result = runner.invoke(app, ["prune", "--model", str(saved_tiny), "--method", "wanda", "--calib", "tiny",
                                 "--nsamples", "2", "--seqlen", "16", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not out.exists()


def test_allocation_command_prints_blocks(saved_tiny: Path):
    result = runner.invoke(app, ["allocation", "--model", str(saved_tiny), "--allocation", "owl", "--sparsity", "0.5",
                                 "--calib", "tiny", "--nsamples", "2", "--seqlen", "16", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["blocks"]) == len(decoder_blocks(tiny_model("qwen3")).layers)
    assert data["mean"] == pytest.approx(0.5, abs=1e-6)


def _explicit_influence(model, train, validation, damping=0.1):
    """DataInf influence written out with explicit vectors (no Gram trick), per block."""
    import torch

    blocks = decoder_blocks(model).layers

    def grads(sample):
        model.zero_grad()
        ids = sample.reshape(1, -1)
        model(input_ids=ids, labels=ids).loss.backward()
        return [torch.cat([m.weight.grad.flatten() for m in b.modules() if isinstance(m, torch.nn.Linear)]).double()
                for b in blocks]

    val = [sum(gs) / len(validation) for gs in zip(*[grads(s) for s in validation])]
    tr = [grads(s) for s in train]
    out = []
    for b in range(len(blocks)):
        g = [t[b] for t in tr]
        lam = damping * float(sum(x @ x for x in g) / len(g)) / g[0].numel()
        ihvp = sum((val[b] - (x @ val[b]) / (lam + x @ x) * x) / lam for x in g) / len(g)
        out.append(float(sum(min(0.0, float(-(ihvp @ x))) for x in g)))  # the helpful (negative) ones
    return out


def test_layerif_matches_the_explicit_datainf_formula():
    import torch

    from prunescale.prune.allocation.layerif import layer_influence

    model = tiny_model("llama", layers=3, vocab=60)
    g = torch.Generator().manual_seed(3)
    train = [torch.randint(5, 50, (12,), generator=g) for _ in range(6)]
    val = [torch.randint(5, 50, (12,), generator=g) for _ in range(3)]
    ours = layer_influence(model, train, val)
    assert all(p.grad is None for p in model.parameters())  # gradients are not left behind
    ref = _explicit_influence(model, train, val)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9)
    assert any(x < 0 for x in ours)  # helpful influences exist (a sum of positive ones would be 0 here)
    sketched = layer_influence(model, train, val, sketch_dim=4096)  # blocks have ~37k weights: sketched
    assert np.corrcoef(sketched, ours)[0, 1] > 0.9


def test_layerif_allocator_keeps_the_mean_and_direction(tmp_path: Path):
    import torch

    model = tiny_model("qwen3", layers=3, vocab=60)
    g = torch.Generator().manual_seed(4)
    data = ([torch.randint(5, 50, (12,), generator=g) for _ in range(6)],
            [torch.randint(5, 50, (12,), generator=g) for _ in range(3)])
    alloc = allocate("layerif", _ctx(model, influence_data=data, influence_key="t", cache=tmp_path))
    scores = alloc.scores["influence"]
    assert weighted_mean(alloc.per_block, block_weights(model)) == pytest.approx(0.5, abs=1e-4)
    order = sorted(range(3), key=lambda i: scores[i])
    # higher score (less helpful influence) → more pruning; the most helpful block is pruned least
    assert [alloc.per_block[i] for i in order] == sorted(alloc.per_block)
    assert alloc.note == ""
    with pytest.raises(PrunescaleError, match="task data"):
        allocate("layerif", _ctx(model))


def test_an_allocation_that_comes_out_uniform_says_so(tmp_path: Path):
    """Blocks that are copies of one another score the same: AlphaPruning then gives every block S, and
    the allocation carries a note (the run prints it as a warning and the manifest keeps it)."""
    import torch

    model = tiny_model("qwen3", layers=3, vocab=60)
    layers = decoder_blocks(model).layers
    with torch.no_grad():
        for b in layers[1:]:
            for p_to, p_from in zip(b.parameters(), layers[0].parameters()):
                p_to.copy_(p_from)
    alloc = allocate("alpha", _ctx(model, cache=tmp_path))
    assert alloc.per_block == pytest.approx([0.5] * 3) and "this run is uniform" in alloc.note
    assert allocate("uniform", _ctx(model)).note == ""


def test_tune_allocation_records_the_held_out_choice(saved_tiny: Path, tmp_path: Path):
    out = tmp_path / "tune"
    base = ["tune-allocation", "--model", str(saved_tiny), "--method", "wanda", "--sparsity", "0.5",
            "--allocation", "owl", "--calib", "tiny", "--nsamples", "4", "--seqlen", "32", "--limit", "4"]
    result = runner.invoke(app, [*base, "--grid", "m=3,5;lambda=0.04,0.08", "--on", "tiny:validation",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    tuning = json.loads((out / "tuning.json").read_text())
    assert len(tuning["trials"]) == 4
    best = min(tuning["trials"], key=lambda t: t["perplexity"])
    assert tuning["best"] == {"owl_m": best["owl_m"], "owl_lambda": best["owl_lambda"]}
    assert tuning["selected_on"]["split"] == "validation"
    for args, message in [
        (["--grid", "m=3", "--on", "tiny:test"], "never the test split"),
        (["--grid", "q=3", "--on", "tiny:validation"], "unknown knob"),
        (["--grid", "m=x", "--on", "tiny:validation"], "must be numbers"),
        (["--grid", "lambda=0.7", "--on", "tiny:validation"], "λ < S"),
    ]:
        bad = runner.invoke(app, [*base, *args, "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists()


def test_outlier_ratio_matrix_by_matrix_equals_the_concatenated_rule() -> None:
    """outlier_ratio sums matrix by matrix (no concatenated copy of a block's scores): same value as the
    rule on the concatenation, for matrices of different shapes."""
    import torch

    from prunescale.prune.allocation.owl import outlier_ratio

    g = torch.Generator().manual_seed(3)
    scores = [torch.rand(17, 9, generator=g) ** 4, torch.rand(5, 31, generator=g) ** 4, torch.rand(64, generator=g)]
    flat = torch.cat([s.flatten() for s in scores]).double()
    for m in (1.0, 3.0, 5.0):
        expected = float((flat > m * flat.mean()).double().mean())
        assert abs(outlier_ratio(scores, m) - expected) < 1e-12


def test_layerif_runs_on_the_device_and_returns_the_model_to_the_host():
    """LayerIF's whole-model backward passes go to ``--device`` (a non-"cpu" device string exercises the
    path on a CPU machine); the model comes back to the host afterwards, and running out of device memory
    is one clear error."""
    import torch

    from prunescale.errors import PrunescaleError
    from prunescale.prune.allocation.registry import AllocationContext, _layerif_on_device

    model = tiny_model("qwen2", layers=2, vocab=60)
    ctx = AllocationContext(model, 0.5, (), "cpu:0")
    seen = []
    assert _layerif_on_device(ctx, lambda: seen.append(next(model.parameters()).device) or [1.0]) == [1.0]
    assert seen == [torch.device("cpu")] and next(model.parameters()).device == torch.device("cpu")

    def boom() -> list[float]:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(PrunescaleError, match="LayerIF needs the whole model"):
        _layerif_on_device(ctx, boom)
