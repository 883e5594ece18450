"""Layer removal: scores, rules, config fix-ups, reload and KV-cache generation, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.api import matched_block_count, prune_structured
from prunescale.cli import app
from prunescale.config import StructuredSpec
from prunescale.models.anatomy import decoder_blocks
from prunescale.prune.structured.remove import block_params, remove_blocks
from prunescale.prune.structured.rules import RuleInput
from prunescale.prune.structured.scores import angular_distance, block_influence, boundary_cosines
from prunescale.registry import REMOVALS as RULES


def _samples(n=4, length=20, vocab=50):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(5, vocab, (length,), generator=g) for _ in range(n)]


def _make_identity(block: torch.nn.Module) -> None:
    """Zero the output projections: the block adds nothing to the residual stream."""
    with torch.no_grad():
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()


def test_identity_block_has_zero_influence_and_goes_first(arch):
    model = tiny_model(arch, layers=4, vocab=60)
    _make_identity(decoder_blocks(model).layers[2])
    bi = block_influence(boundary_cosines(model, _samples()))
    assert abs(bi[2]) < 1e-5
    assert min(b for i, b in enumerate(bi) if i != 2) > 1e-3
    plan = RULES["shortgpt"](RuleInput(model, 1, _samples()))
    assert plan.indices == [2]


def test_shortgpt_removes_the_lowest_scores(arch):
    model = tiny_model(arch, layers=5, vocab=60)
    plan = RULES["shortgpt"](RuleInput(model, 2, _samples()))
    bi = plan.scores["block_influence"]
    assert sorted(bi)[:2] == sorted(bi[i] for i in plan.indices)


def test_shortgpt_never_removes_the_last_block_unless_asked():
    """An identity last block is the most redundant by its raw output (the old rule removed it; on
    Qwen2.5-0.5B ShortGPT −2 removed blocks 22 and 23). As LPHIS scores it, the last block is never a
    candidate; with shortgpt_last=normed (ShortGPT's code) it is scored against the normed final state."""
    model = tiny_model("qwen3", layers=4, vocab=60)
    _make_identity(decoder_blocks(model).layers[-1])
    raw = block_influence(boundary_cosines(model, _samples()))
    assert abs(raw[-1]) < 1e-5 and min(raw[:-1]) > 1e-3  # by the raw output, the last block goes first
    plan = RULES["shortgpt"](RuleInput(model, 1, _samples()))
    assert 3 not in plan.indices and len(plan.scores["block_influence"]) == 3
    with torch.no_grad():
        model.model.norm.weight.fill_(1.0)  # RMSNorm with unit weights keeps each token's direction
    normed = RULES["shortgpt"](RuleInput(model, 1, _samples(), shortgpt_last="normed"))
    assert normed.indices == [3] and len(normed.scores["block_influence"]) == 4


def test_boundaries_equal_the_hidden_states_transformers_reports():
    """With final_norm and last_token the pass gives what Gromov et al.'s recipe computes from Hugging
    Face's hidden_states (whose last entry is after the final norm), at the last token."""
    model = tiny_model("llama", layers=4, vocab=60)
    samples = _samples()
    cos = boundary_cosines(model, samples, max_run=2, last_token=True, final_norm=True)
    with torch.no_grad():
        hs = [model(input_ids=s[None], output_hidden_states=True).hidden_states for s in samples]
    for n in (1, 2):
        ref = [float(sum(torch.nn.functional.cosine_similarity(h[i][0, -1], h[i + n][0, -1], dim=0) for h in hs))
               / len(hs) for i in range(4 - n + 1)]
        assert cos[n] == pytest.approx(ref, abs=1e-5)


def test_angular_picks_the_closest_run():
    model = tiny_model("llama", layers=5, vocab=60)
    for i in (1, 2):
        _make_identity(decoder_blocks(model).layers[i])
    cos = boundary_cosines(model, _samples(), max_run=2)
    dist = angular_distance(cos, 2)
    assert len(dist) == 4 and dist[1] < 1e-3
    assert RULES["angular"](RuleInput(model, 2, _samples())).indices == [1, 2]


def test_simple_rules():
    model = tiny_model("qwen2", layers=6, vocab=60)
    assert RULES["reverse"](RuleInput(model, 2)).indices == [4, 5]
    assert RULES["reverse"](RuleInput(model, 2, keep_last=True)).indices == [3, 4]
    a = RULES["random"](RuleInput(model, 3, seed=5)).indices
    assert a == RULES["random"](RuleInput(model, 3, seed=5)).indices and len(set(a)) == 3
    assert RULES["layers"](RuleInput(model, 2, layers=[4, 1])).indices == [1, 4]


def test_laco_merges_by_adding_differences_and_respects_the_threshold():
    model = tiny_model("qwen3", layers=4, vocab=60)
    layers = decoder_blocks(model).layers
    before = {n: [p.detach().clone() for p in layers[i].parameters()] for n, i in (("b1", 1), ("b2", 2), ("b3", 3))}
    plan = RULES["laco"](RuleInput(model, 1, _samples(), laco_threshold=1e-6, laco_span=1))
    assert plan.indices == [3] and plan.merged == {2: [3]}
    # θ2 + (θ3 − θ2): with a span of one, the kept block takes the folded block's weights
    for p, b3 in zip(layers[2].parameters(), before["b3"]):
        torch.testing.assert_close(p, b3)
    model2 = tiny_model("qwen3", layers=4, vocab=60)
    plan2 = RULES["laco"](RuleInput(model2, 2, _samples(), laco_threshold=1e-6, laco_span=2))
    assert plan2.merged == {1: [2, 3]}
    for p, b1, b2, b3 in zip(decoder_blocks(model2).layers[1].parameters(), before["b1"], before["b2"], before["b3"]):
        torch.testing.assert_close(p, b1 + (b2 - b1) + (b3 - b1))
    strict = tiny_model("qwen3", layers=4, vocab=60)
    original = [p.detach().clone() for p in strict.parameters()]
    none = RULES["laco"](RuleInput(strict, 1, _samples(), laco_threshold=1.0))
    assert none.indices == [] and "only 0 of 1" in none.note and "16 calibration samples" not in none.note
    assert all(torch.equal(a, b) for a, b in zip(strict.parameters(), original))  # rejected merges are undone


def test_removal_fixes_config_and_layer_indices(arch):
    model = tiny_model(arch, layers=5, vocab=60)
    model.config.layer_types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention",
                                "full_attention"]
    keep = remove_blocks(model, [1, 3])
    assert keep == [0, 2, 4]
    cfg = model.config
    assert cfg.num_hidden_layers == 3 and len(decoder_blocks(model).layers) == 3
    assert cfg.layer_types == ["full_attention", "full_attention", "full_attention"]
    for j, block in enumerate(decoder_blocks(model).layers):
        assert block.self_attn.layer_idx == j
    with pytest.raises(ValueError):
        remove_blocks(model, [7])


def test_kv_cache_generation_equals_uncached_after_removal(arch):
    model = tiny_model(arch, layers=4, vocab=60)
    remove_blocks(model, [1])
    ids = torch.randint(5, 50, (2, 7))
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, use_cache=True, **kw), model.generate(ids, use_cache=False, **kw))


def test_matched_block_count():
    assert matched_block_count([10] * 10, 0.2) == 2
    assert matched_block_count([10] * 10, 0.01) == 1
    assert matched_block_count([10] * 4, 0.99) == 3


@pytest.fixture
def saved_tiny4(tmp_path: Path, arch: str, char_tokenizer) -> Path:
    folder = tmp_path / f"tiny4-{arch}"
    tiny_model(arch, layers=4, vocab=len(char_tokenizer)).save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method, extra", [("shortgpt", {"remove_layers": 1}), ("angular", {"remove_layers": 2}),
                                           ("layers", {"layers": [0, 2]}), ("reverse", {"match_sparsity": 0.3})])
def test_saved_folder_reloads_with_equal_logits(saved_tiny4: Path, tmp_path: Path, method, extra):
    saved_tiny = saved_tiny4
    out = tmp_path / "cut"
    original = AutoModelForCausalLM.from_pretrained(saved_tiny)
    n_before = original.config.num_hidden_layers
    spec = StructuredSpec(model=str(saved_tiny), method=method,
                          calibration={"source": "tiny", "nsamples": 4, "seqlen": 32}, out=out, **extra)
    prune_structured(spec, log=lambda _m: None)
    manifest = json.loads((out / "pruning_manifest.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    removed = manifest["removed_layers"]
    assert reloaded.config.num_hidden_layers == n_before - len(removed) == manifest["num_layers_after"]
    if getattr(reloaded.config, "layer_types", None) is not None:  # Qwen2/Qwen3 keep one entry per layer
        assert len(reloaded.config.layer_types) == reloaded.config.num_hidden_layers
    sizes = block_params(original)
    assert manifest["removed_param_fraction_blocks"] == pytest.approx(sum(sizes[i] for i in removed) / sum(sizes))
    # the kept blocks are the original ones, in order: replaying the reference without them gives equal logits
    remove_blocks(original, removed)
    x = torch.randint(5, 50, (1, 11))
    torch.testing.assert_close(reloaded(x).logits, original(x).logits)


runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "shortgpt", "--remove-layers", "2"], "remove at most 1"),
        (["--method", "shortgpt", "--remove-layers", "0"], "must be ≥ 1"),
        (["--method", "shortgpt", "--remove-layers", "-1"], "must be ≥ 1"),
        (["--method", "layers", "--layers", "0,0"], "repeat"),
        (["--method", "layers", "--layers", "9"], "out of range"),
        (["--method", "layers", "--layers", "a,b"], "comma-separated integers"),
        (["--method", "reverse", "--match-sparsity", "0"], "(0, 1)"),
        (["--method", "reverse", "--match-sparsity", "1.5"], "(0, 1)"),
        (["--method", "laco", "--remove-layers", "1", "--laco-threshold", "1.5"], "(0, 1]"),
        (["--method", "laco", "--remove-layers", "1", "--laco-threshold", "0"], "(0, 1]"),
        (["--method", "shortgpt", "--remove-layers", "1", "--match-sparsity", "0.2"], "exactly one"),
        (["--method", "shortgpt", "--sparsity", "0.5"], "removes whole blocks"),
        (["--method", "wanda", "--remove-layers", "1"], "unstructured"),
    ],
)
def test_bad_structured_input(saved_tiny: Path, tmp_path: Path, args, message):
    out = tmp_path / "o"
    result = runner.invoke(app, ["prune", "--model", str(saved_tiny), "--out", str(out), "--calib", "tiny",
                                 "--seqlen", "32", "--nsamples", "2", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not out.exists()
