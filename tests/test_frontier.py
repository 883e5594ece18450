"""RIA, DSnoT, DLP and ATP: each against a direct implementation of its formula, on hand-sized cases
whose right answer is known, and end to end on tiny random Llama / Qwen2 / Qwen3 models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.api import prune
from prunescale.cli import app
from prunescale.config import PruneSpec
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import prunable_linears
from prunescale.prune.allocation.allocate import weighted_mean
from prunescale.prune.allocation.atp import atp_sparsities
from prunescale.prune.allocation.dlp import dlp_sparsities, median_score
from prunescale.prune.allocation.registry import AllocationContext, allocate, block_weights
from prunescale.prune.audit import check_realised
from prunescale.prune.dsnot import dsnot_refine
from prunescale.prune.masks import check_nm, row_mask
from prunescale.prune.ria import channel_permutation, kept_score, ria_scores, snake_order
from prunescale.prune.unstructured import Pattern, prune_model, uniform

runner = CliRunner()


def _samples(n=6, length=24, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, vocab, (length,), generator=g) for _ in range(n)]


# --- RIA ---------------------------------------------------------------------------------------------

def test_ria_score_is_the_formula_elementwise():
    g = torch.Generator().manual_seed(0)
    w, norms = torch.randn(5, 7, generator=g), torch.rand(7, generator=g) + 0.1
    got = ria_scores(w, norms, a=0.5)
    for i in range(5):
        for j in range(7):
            row = sum(abs(float(w[i, k])) for k in range(7))
            col = sum(abs(float(w[k, j])) for k in range(5))
            want = (abs(float(w[i, j])) / row + abs(float(w[i, j])) / col) * float(norms[j]) ** 0.5
            assert float(got[i, j]) == pytest.approx(want, rel=1e-5)
    assert torch.allclose(ria_scores(w, norms, a=0.0), ria_scores(w, torch.ones(7), a=1.0))


def test_ria_keeps_the_weight_its_column_depends_on():
    """In column 1 the small weight of row 0 is all there is (its share of the column is 1), while row 0's
    larger weights in columns 2 and 3 are small beside row 1's. Per-row magnitude drops it, RIA keeps it
    and drops those two instead."""
    w = torch.tensor([[10.0, 0.5, 4.0, 3.0], [1.0, 0.0, 40.0, 30.0]])
    norms = torch.ones(4)
    magnitude = row_mask(w.abs(), 0.5)
    ria = row_mask(ria_scores(w, norms), 0.5)
    assert magnitude[0].tolist() == [False, True, False, True]
    assert ria[0].tolist() == [False, False, True, True]


def test_snake_order_deals_one_channel_of_each_quantile_per_group():
    scores = torch.arange(8.0).unsqueeze(0)  # channel j has importance j
    index = snake_order(scores, 4)
    # chunks (ascending) [0,1] [2,3] [4,5] [6,7]; the even (2nd, 4th) reversed; chunk k fills positions k::4
    assert index.tolist() == [0, 3, 4, 7, 1, 2, 5, 6]


def test_channel_permutation_finds_the_best_2_4_grouping():
    """Four important channels in one group of 2:4 lose two of them; the best permutation puts two in
    each group, keeping all four (the optimum, 34 of 38)."""
    scores = torch.tensor([[10.0, 9.0, 8.0, 7.0, 1.0, 1.0, 1.0, 1.0]])
    assert kept_score(scores, 2, 4) == 21.0
    perm = channel_permutation(scores, 2, 4)
    assert sorted(perm.tolist()) == list(range(8))
    assert kept_score(scores[:, perm], 2, 4) == 34.0


def test_channel_permutation_never_keeps_less_than_its_heuristic_start():
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(16, 32, generator=g) * torch.exp(torch.randn(32, generator=g))
    start = kept_score(scores[:, snake_order(scores, 4)], 2, 4)
    assert kept_score(scores[:, channel_permutation(scores, 2, 4)], 2, 4) >= start - 1e-4


def test_ria_nm_with_permutation_is_audited_in_the_permuted_order(arch):
    model = tiny_model(arch, vocab=60)
    pattern = Pattern(nm=(2, 4))
    prune_model(model, "ria", pattern, _samples(), ria_permute=True, progress=False)
    assert pattern.permutations  # recorded for every module
    name, lin = next(iter(prunable_linears(model).items()))
    perm = pattern.permutations[name]
    assert check_nm(lin.weight[:, perm] == 0, 2, 4)
    with pytest.raises(PrunescaleError, match="not a valid 2:4"):  # the same weights in the original order
        check_realised(model, Pattern(nm=(2, 4)))


# --- DSnoT -------------------------------------------------------------------------------------------

def _dsnot_by_hand(values, mask, mean, var, importance, error, cycles, threshold):
    """The prune-and-grow loop written plainly, one row at a time (the spec in prune/dsnot.py)."""
    mask = mask.clone()
    rows, cols = mask.shape
    for i in range(rows):
        D = [float(values[i, j] * mean[j]) for j in range(cols)]
        kept0 = [j for j in range(cols) if not mask[i, j]]
        grow = sorted(range(cols), key=lambda j: (D[j] / max(float(var[j]), 1e-12) if mask[i, j] else 0.0, j))
        neg = sorted((j for j in kept0 if D[j] < 0), key=lambda j: (float(importance[i, j]), j))
        pos = sorted((j for j in kept0 if D[j] >= 0), key=lambda j: (float(importance[i, j]), j))
        r = float(error[i])
        lo_g, hi_g, lo_n, lo_p = 0, cols - 1, 0, 0
        for _ in range(cycles):
            if abs(r) <= threshold:
                break
            up = r > 0
            if up:
                gj, pj = grow[hi_g], (neg[lo_n] if lo_n < len(neg) else None)
                ok = pj is not None and bool(mask[i, gj]) and D[gj] > 0
            else:
                gj, pj = grow[lo_g], (pos[lo_p] if lo_p < len(pos) else None)
                ok = pj is not None and bool(mask[i, gj]) and D[gj] < 0 and D[pj] > 0
            if not ok:
                break
            mask[i, gj], mask[i, pj] = False, True
            r += D[pj] - D[gj]
            if up:
                hi_g, lo_n = hi_g - 1, lo_n + 1
            else:
                lo_g, lo_p = lo_g + 1, lo_p + 1
    return mask


def test_dsnot_hand_case_one_swap():
    """W = [3, −0.5, 0.1, 0.2, 0.15, 2.5], E[x] = 1: at 50 % the three smallest (0.1, 0.15, 0.2) are pruned,
    r = 0.45 > 0. DSnoT regrows 0.2 (the largest positive D) and prunes −0.5 (the least important kept
    weight with negative D): r = −0.25. Next cycle r < 0 wants a negative pruned weight to regrow; there
    is none, so the row stops. Sparsity unchanged, |r| 0.45 → 0.25."""
    w = torch.tensor([[3.0, -0.5, 0.1, 0.2, 0.15, 2.5]])
    ones = torch.ones(6)
    mask = row_mask(w.abs(), 0.5)
    assert mask[0].tolist() == [False, False, True, True, True, False]
    error = (w * mask) @ ones
    new, info = dsnot_refine(w, mask, ones, ones, w.abs(), error, cycles=50, threshold=0.1)
    assert new[0].tolist() == [False, True, True, False, True, False]
    assert info["swaps"] == 1
    assert float(((w * new) @ ones).abs()) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(4))
def test_dsnot_equals_the_plain_loop_on_random_rows(seed):
    g = torch.Generator().manual_seed(seed)
    rows, cols = 12, 40
    w = torch.randn(rows, cols, generator=g)
    mean = torch.randn(cols, generator=g) * 0.5
    var = torch.rand(cols, generator=g) + 0.05
    importance = w.abs() * (torch.rand(cols, generator=g) + 0.5)
    mask = row_mask(importance, 0.5)
    error = (w * mask) @ mean
    new, _ = dsnot_refine(w, mask, mean, var, importance, error, cycles=7, threshold=0.05)
    want = _dsnot_by_hand(w, mask, mean, var, importance, error, 7, 0.05)
    assert torch.equal(new, want)
    assert torch.equal(new.sum(1), mask.sum(1))  # every row keeps its count of pruned weights


def test_dsnot_threshold_is_in_per_sequence_units():
    """With ``error_scale`` T (tokens per calibration sequence) a row stops once |r|·T ≤ threshold."""
    w = torch.tensor([[3.0, -0.5, 0.1, 0.2, 0.15, 2.5]])
    ones = torch.ones(6)
    mask = row_mask(w.abs(), 0.5)
    error = (w * mask) @ ones  # 0.45
    same, info = dsnot_refine(w, mask, ones, ones, w.abs(), error, threshold=0.1, error_scale=0.2)  # 0.09 ≤ 0.1
    assert torch.equal(same, mask) and info["swaps"] == 0


# --- DLP and ATP -------------------------------------------------------------------------------------

def test_dlp_map_is_s_plus_two_alpha_centred_scores():
    scores, w = [1.0, 3.0, 2.0, 5.0], [1, 1, 1, 1]
    got = dlp_sparsities(scores, 0.5, 0.1, w)
    u = [0.0, 0.5, 0.25, 1.0]
    assert got == pytest.approx([0.5 + 0.2 * (x - 0.4375) for x in u])
    assert max(got) - min(got) == pytest.approx(0.2)  # span 2α
    assert weighted_mean(got, w) == pytest.approx(0.5)
    assert dlp_sparsities([2.0, 2.0], 0.5, 0.1, [1, 1]) == [0.5, 0.5]
    with pytest.raises(PrunescaleError, match="lower α"):
        dlp_sparsities(scores, 0.9, 0.2, w)


def test_dlp_block_score_is_the_median_of_all_its_scores():
    assert median_score([torch.tensor([[1.0, 9.0]]), torch.tensor([5.0, 2.0, 7.0])]) == 5.0


def test_atp_is_an_arithmetic_progression_with_mean_s():
    got = atp_sparsities(0.5, 0.02, [10, 10, 10, 10, 10])
    assert got == pytest.approx([0.46, 0.48, 0.5, 0.52, 0.54])
    assert atp_sparsities(0.5, 0.0, [1, 1, 1]) == [0.5, 0.5, 0.5]
    uneven = atp_sparsities(0.5, 0.1, [1, 3])
    assert weighted_mean(uneven, [1, 3]) == pytest.approx(0.5) and uneven[1] - uneven[0] == pytest.approx(0.1)
    with pytest.raises(PrunescaleError, match="use β ≤"):
        atp_sparsities(0.7, 0.2, [1, 1, 1, 1])  # the last block would pass 0.99


def _ctx(model, **kw):
    return AllocationContext(model, 0.5, _samples(), **kw)


@pytest.mark.parametrize("name", ["dlp", "atp"])
def test_dlp_and_atp_allocators_keep_the_mean_and_their_direction(name):
    model = tiny_model("llama", layers=3, vocab=60)
    alloc = allocate(name, _ctx(model))
    assert weighted_mean(alloc.per_block, block_weights(model)) == pytest.approx(0.5, abs=1e-6)
    if name == "atp":
        assert alloc.per_block == sorted(alloc.per_block) and alloc.per_block[0] < alloc.per_block[-1]
    else:
        med = alloc.scores["median_score"]
        order = sorted(range(3), key=lambda i: med[i])
        assert [alloc.per_block[i] for i in order] == sorted(alloc.per_block)
        assert alloc.input_stats is not None and alloc.block_forwards > 0


# --- end to end --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ria", "wanda+dsnot", "sparsegpt+dsnot", "magnitude+dsnot", "ria+dsnot"])
def test_every_frontier_method_prunes_to_the_audited_target(arch, method):
    model = tiny_model(arch, vocab=60)
    spec = PruneSpec(model="x", method=method, sparsity=0.5, out="o")
    before = {n: m.weight.detach().clone() for n, m in prunable_linears(model).items()}
    result = prune_model(model, spec.method, Pattern(uniform(model, 0.5)), _samples(), progress=False,
                         **spec.method_options())
    assert abs(result["realised_global"] - 0.5) < 1e-3
    if spec.refine:
        assert result["run"]["dsnot_swaps"] > 0  # the refinement changed masks
    if spec.method != "sparsegpt":  # no weight update: every kept weight is its dense value
        for n, m in prunable_linears(model).items():
            kept = m.weight != 0
            assert torch.equal(m.weight[kept], before[n][kept])


def test_sparsegpt_dsnot_regrows_with_candidate_values_and_lowers_the_expected_error():
    from prunescale.prune.sparsegpt import SparseGPT

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 256, generator=g) + 0.1  # inputs with a mean
    w = torch.randn(16, 256, generator=g)
    sg = SparseGPT(256)
    sg.add_batch(x)
    new, mask = sg.prune(w, 0.5, keep_candidates=True)
    stats = sg.input_stats()
    assert torch.allclose(stats.mean, x.mean(0), atol=1e-5) and torch.allclose(stats.var, x.var(0, False), atol=1e-4)
    cand = sg.candidates
    assert torch.equal(new[~mask], cand[~mask])  # kept weights are their candidate values
    error = (w - new) @ stats.mean
    refined, info = dsnot_refine(cand, mask, stats.mean, stats.var, cand.abs() * stats.norms, error, threshold=0.1)
    assert info["swaps"] > 0 and torch.equal(refined.sum(1), mask.sum(1))
    grown = mask & ~refined
    final = torch.where(grown, cand, new).masked_fill(refined, 0)
    assert float(((w - final) @ stats.mean).abs().mean()) < float(error.abs().mean())


def test_dlp_shares_its_dense_pass_with_the_method_in_the_dense_regime(tmp_path: Path, saved_tiny: Path):
    """RIA + DLP with ``sequential`` off costs one dense pass (DLP's) and no pass of its own, as Wanda + OWL."""
    out = tmp_path / "p"
    prune(PruneSpec(model=str(saved_tiny), method="ria", sparsity=0.5, allocation="dlp", sequential=False,
                    calibration={"source": "tiny", "nsamples": 4, "seqlen": 32}, out=out),
          log=lambda _m: None, progress=False)
    manifest = json.loads((out / "pruning_manifest.json").read_text())
    assert manifest["block_forwards"] == 2 * 2 - 1 and manifest["regime"] == "dense-activations"
    assert manifest["allocation"] == "dlp" and len(manifest["allocation_scores"]["median_score"]) == 2


def test_cli_method_plus_refinement_and_option_errors(tmp_path: Path, saved_tiny: Path):
    base = ["prune", "--model", str(saved_tiny), "--calib", "tiny", "--nsamples", "4",
            "--seqlen", "32"]
    ok = runner.invoke(app, [*base, "--sparsity", "0.5", "--method", "wanda+dsnot", "--allocation", "atp",
                             "--atp-beta", "0.05", "--out", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    manifest = json.loads((tmp_path / "ok" / "pruning_manifest.json").read_text())
    assert manifest["method"] == "wanda+dsnot" and manifest["refine"] == "dsnot"
    assert manifest["options"]["refine"]["dsnot_cycles"] == 50 and manifest["run"]["dsnot_swaps"] >= 0
    for args, message in [
        (["--sparsity", "0.5", "--method", "wanda", "--dsnot-cycles", "3"], "add +dsnot"),
        (["--sparsity", "0.5", "--method", "wanda", "--ria-a", "1"], "not an option of wanda"),
        (["--sparsity", "0.5", "--method", "ria", "--ria-permute"], "give --nm"),
        (["--sparsity", "0.5", "--method", "wanda+foo"], "unknown refinement"),
        (["--method", "wanda+dsnot", "--nm", "2:4"], "break an N:M pattern"),
        (["--sparsity", "0.5", "--method", "wanda", "--allocation", "atp", "--atp-beta", "0.995"], "β"),
        (["--sparsity", "0.5", "--method", "wanda", "--dlp-alpha", "0.1"], "not a knob of allocation 'uniform'"),
    ]:
        bad = runner.invoke(app, [*base, *args, "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.stderr, (args, bad.stderr)
        assert not (tmp_path / "bad").exists()


def test_study_grid_takes_method_plus_refinement_and_every_example_validates():
    from prunescale.study.spec import expand, load_spec

    examples = sorted(Path(__file__).resolve().parents[1].joinpath("examples").glob("*.yaml"))
    assert examples
    for path in examples:
        expand(load_spec(path))  # every shipped example is a valid study
    variants = {v.name: v for v in expand(load_spec(examples[[p.name for p in examples].index("frontier.yaml")]))}
    v = variants["wanda-dsnot-50-uniform"]
    assert (v.method, v.refine, v.label, v.sparsity) == ("wanda", "dsnot", "wanda+dsnot", 0.5)
    assert variants["wanda-70-atp"].atp_beta == 0.05 and variants["ria-70-uniform"].method == "ria"


def test_tune_allocation_grids_atp_beta_and_dlp_alpha(saved_tiny: Path, tmp_path: Path):
    base = ["tune-allocation", "--model", str(saved_tiny), "--method", "ria", "--sparsity", "0.5", "--calib", "tiny",
            "--nsamples", "4", "--seqlen", "32", "--limit", "4", "--on", "tiny:validation"]
    for allocation, grid, key in [("atp", "atp_beta=0,0.1", "atp_beta"), ("dlp", "dlp_alpha=0.05,0.1", "dlp_alpha")]:
        out = tmp_path / allocation
        result = runner.invoke(app, [*base, "--allocation", allocation, "--grid", grid, "--out", str(out)])
        assert result.exit_code == 0, result.output
        trials = json.loads((out / "tuning.json").read_text())["trials"]
        assert [t[key] for t in trials] == [float(x) for x in grid.split("=")[1].split(",")]
        if allocation == "atp":  # β = 0 is uniform; β = 0.1 over 2 blocks is S ∓ 0.05
            assert trials[0]["per_block"] == pytest.approx([0.5, 0.5])
            assert trials[1]["per_block"] == pytest.approx([0.45, 0.55])


@pytest.mark.parametrize("skip", ["mlp", "none"])
def test_dsnot_leaves_mlp_masks_alone_by_default(skip):
    """As the reference code's default (skip_layer "mlp"): MLP Linears keep Wanda's mask, attention Linears
    are refined; with dsnot_skip "none" every Linear is. Dense statistics, so that a refined attention
    does not change the MLP's inputs."""
    plain, refined = tiny_model("qwen3", vocab=60), tiny_model("qwen3", vocab=60)
    prune_model(plain, "wanda", Pattern(uniform(plain, 0.5)), _samples(), progress=False, sequential=False)
    spec = PruneSpec(model="x", method="wanda+dsnot", sparsity=0.5, out="o", dsnot_skip=skip, sequential=False)
    prune_model(refined, "wanda", Pattern(uniform(refined, 0.5)), _samples(), progress=False, **spec.method_options())
    a, b = prunable_linears(plain), prunable_linears(refined)
    changed = {n for n in a if not torch.equal(a[n].weight == 0, b[n].weight == 0)}
    assert any("self_attn" in n for n in changed)
    assert any("mlp" in n for n in changed) == (skip == "none")


def test_ria_per_matrix_selection_is_the_reference_default_option():
    model = tiny_model("llama", vocab=60)
    spec = PruneSpec(model="x", method="ria", sparsity=0.5, group="matrix", out="o")
    prune_model(model, "ria", Pattern(uniform(model, 0.5), group=spec.group), _samples(), progress=False,
                **spec.method_options())
    per_row = [float((m.weight == 0).float().mean(1).std()) for m in prunable_linears(model).values()]
    assert max(per_row) > 0  # rows prune different amounts: one threshold per matrix
    with pytest.raises(ValueError, match="for magnitude and ria"):
        PruneSpec(model="x", method="wanda", sparsity=0.5, group="matrix", out="o")
