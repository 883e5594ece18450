"""The pruning engine end to end on tiny random Llama / Qwen2 / Qwen3 models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.api import prune
from prunescale.cli import app
from prunescale.config import PruneSpec
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import decoder_blocks, prunable_linears
from prunescale.prune.block_runner import capture_inputs, for_each_block, run_block
from prunescale.prune.unstructured import Pattern, prune_model, uniform


def _samples(n=6, length=24, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, vocab, (length,), generator=g) for _ in range(n)]


def test_captured_block_calls_replay_the_real_forward(arch):
    model = tiny_model(arch, vocab=60)
    ids = _samples(2)
    seen = []
    last = decoder_blocks(model).layers[-1]
    handle = last.register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        for s in ids:
            model(input_ids=s[None], use_cache=False)
    handle.remove()
    calls = capture_inputs(model, ids, "cpu")
    for i, block in enumerate(decoder_blocks(model).layers):
        for c, h in zip(calls, run_block(block, calls, "cpu", i)):
            c.hidden = h
    for c, ref in zip(calls, seen):
        torch.testing.assert_close(c.hidden, ref)


def _no_hooks(model):
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_hooks_are_removed_even_when_the_visitor_fails():
    model = tiny_model("qwen3", vocab=60)

    def boom(i, block, forward):
        from prunescale.prune.block_runner import hooked

        with hooked([block.register_forward_pre_hook(lambda *a: None)]):
            forward()
            raise RuntimeError("visitor failed")

    with pytest.raises(RuntimeError, match="visitor failed"):
        for_each_block(model, _samples(2), boom, progress=False)
    assert _no_hooks(model)
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_every_method_hits_the_target_on_every_family(arch, method):
    model = tiny_model(arch, vocab=60)
    result = prune_model(model, method, Pattern(uniform(model, 0.4)), _samples(), progress=False)
    assert abs(result["realised_global"] - 0.4) < 0.005
    for name, lin in prunable_linears(model).items():
        assert abs(float((lin.weight == 0).float().mean()) - 0.4) < 0.005, name
    assert _no_hooks(model)


def test_wanda_is_exact_per_row():
    model = tiny_model("llama", vocab=60)
    prune_model(model, "wanda", Pattern(uniform(model, 0.5)), _samples(), progress=False)
    for lin in prunable_linears(model).values():
        assert ((lin.weight == 0).sum(1) == lin.in_features // 2).all()


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_nm_patterns_are_valid(method):
    model = tiny_model("qwen2", vocab=60)
    result = prune_model(model, method, Pattern(nm=(2, 4)), _samples(), progress=False)
    assert result["realised_global"] >= 0.5
    for lin in prunable_linears(model).values():
        kept = (lin.weight != 0).reshape(-1, 4).sum(-1)
        assert (kept <= 2).all()


def test_wanda_makes_two_block_passes_per_block_but_the_last():
    model = tiny_model("qwen3", vocab=60)
    result = prune_model(model, "wanda", Pattern(uniform(model, 0.5)), _samples(), progress=False)
    assert result["run"]["block_forwards"] == 2 * len(decoder_blocks(model).layers) - 1


def _full_pass_norms(block, calls, index):
    """Reference statistics: every call run to the end, no early stop."""
    from prunescale.prune.block_runner import hooked
    from prunescale.prune.statistics import stat_hooks
    from prunescale.prune.wanda import InputNorms

    linears = {n: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
    stats = {n: InputNorms(m.in_features) for n, m in linears.items()}
    with hooked(stat_hooks(linears, stats)):
        run_block(block, calls, "cpu", index)
    return linears, stats


def test_statistics_pass_stops_early_with_the_same_statistics(arch):
    """A statistics pass ends at the last hooked module's input: identical norms, its matmul skipped."""
    from prunescale.prune.block_runner import hooked
    from prunescale.prune.statistics import stat_hooks
    from prunescale.prune.wanda import InputNorms

    model = tiny_model(arch, vocab=60)
    calls = capture_inputs(model, _samples(4), "cpu")
    block = decoder_blocks(model).layers[0]
    linears, ref = _full_pass_norms(block, calls, 0)
    stats = {n: InputNorms(m.in_features) for n, m in linears.items()}
    last = block.mlp.down_proj
    ran = []
    with hooked(stat_hooks(linears, stats) + [last.register_forward_hook(lambda *a: ran.append(1))]):
        assert run_block(block, calls, "cpu", 0, stop_after=list(linears.values())) == []
    for n in linears:
        torch.testing.assert_close(stats[n].sq, ref[n].sq)
        assert stats[n].tokens == ref[n].tokens == 4 * 24
    assert len(ran) == 1  # only the first call (which checks the call counts) ran down_proj


def test_statistics_pass_runs_to_the_end_when_a_module_runs_twice():
    """A block that calls a Linear twice per forward gets full passes (stopping at its first call would
    lose the second call's inputs)."""
    from prunescale.prune.block_runner import hooked
    from prunescale.prune.statistics import stat_hooks
    from prunescale.prune.wanda import InputNorms

    model = tiny_model("llama", vocab=60)
    calls = capture_inputs(model, _samples(3), "cpu")
    block = decoder_blocks(model).layers[0]
    mlp = block.mlp
    plain = mlp.forward

    def twice(x):
        out = plain(x)
        mlp.up_proj(x * 2)  # up_proj again, after down_proj: a pass cut at down_proj would miss it
        return out

    mlp.forward = twice
    linears, ref = _full_pass_norms(block, calls, 0)
    stats = {n: InputNorms(m.in_features) for n, m in linears.items()}
    ran = []
    with hooked(stat_hooks(linears, stats) + [mlp.down_proj.register_forward_hook(lambda *a: ran.append(1))]):
        run_block(block, calls, "cpu", 0, stop_after=list(linears.values()))
    for n in linears:
        torch.testing.assert_close(stats[n].sq, ref[n].sq)
    assert stats["mlp.up_proj"].tokens == 2 * 3 * 24 and len(ran) == 3


def test_engine_input_errors():
    model = tiny_model("qwen3", vocab=60)
    with pytest.raises(PrunescaleError, match="unknown method"):
        prune_model(model, "nope", Pattern(uniform(model, 0.5)))
    with pytest.raises(PrunescaleError, match="no sparsity given"):
        prune_model(model, "magnitude", Pattern({"x": 0.5}))
    with pytest.raises(PrunescaleError, match="needs calibration"):
        prune_model(model, "wanda", Pattern(uniform(model, 0.5)), [])


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_saved_folder_reloads_with_zeros_and_a_true_manifest(saved_tiny: Path, tmp_path: Path, method):
    out = tmp_path / "pruned"
    prune(PruneSpec(model=str(saved_tiny), method=method, sparsity=0.5,
                    calibration={"source": "tiny", "nsamples": 8, "seqlen": 32}, out=out),
          log=lambda _m: None, progress=False)
    manifest = json.loads((out / "pruning_manifest.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no prunescale
    weights = load_file(out / "model.safetensors")
    for name, lin in prunable_linears(reloaded).items():
        zeros = float((lin.weight == 0).float().mean())
        assert zeros == pytest.approx(manifest["realised_per_module"][name], abs=1e-6)
        assert torch.equal(weights[name + ".weight"] == 0, lin.weight == 0)
    assert manifest["method"] == method and manifest["target_sparsity"] == 0.5
    assert abs(manifest["realised_sparsity"] - 0.5) < 0.005
    assert manifest["calibration"] == {"source": "tiny", "split": "train", "nsamples": 8, "seqlen": 32, "seed": 0,
                                       "tokens": 256,
                                       "split_documents": "the task generator's train split (disjoint by construction)"}
    assert manifest["environment"]["packages"]["torch"]
    assert json.loads((out / "allocation.json").read_text()) == {n: 0.5 for n in prunable_linears(reloaded)}
    x = torch.randint(5, 50, (1, 10))
    assert torch.isfinite(reloaded(x).logits).all()


runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope", "--sparsity", "0.5"], "unknown method"),
        (["--method", "wanda", "--sparsity", "1.0"], "sparsity must be in [0, 1)"),
        (["--method", "wanda", "--sparsity", "-0.1"], "sparsity must be in [0, 1)"),
        (["--method", "wanda", "--nm", "3:2"], "0 < N < M"),
        (["--method", "wanda", "--nm", "0:4"], "0 < N < M"),
        (["--method", "wanda", "--nm", "2-4"], "N:M must look like"),
        (["--method", "wanda", "--nm", "2:4", "--sparsity", "0.5"], "exactly one of"),
        (["--method", "wanda"], "exactly one of"),
        (["--method", "wanda", "--sparsity", "0.5", "--allocation", "owlish"], "unknown allocation"),
        (["--method", "wanda", "--sparsity", "0.5", "--dtype", "fp8"], "unknown dtype"),
        (["--method", "wanda", "--sparsity", "0.5", "--device", "cuda:7"], "cuda"),
        (["--method", "wanda", "--sparsity", "0.5", "--calib", "text:/no/such.txt"], "not found"),
        (["--method", "wanda", "--sparsity", "0.5", "--calib", "mystery"], "unknown calibration source"),
        (["--method", "wanda", "--sparsity", "0.5", "--calib", "tiny", "--nsamples", "100000"], "too short"),
        (["--method", "sparsegpt", "--sparsity", "0.5", "--group", "matrix"], "for magnitude and ria"),
    ],
)
def test_bad_prune_input_is_one_line_exit_2(saved_tiny: Path, tmp_path: Path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["prune", "--model", str(saved_tiny), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp folders left


def test_missing_model_and_empty_calibration_file(tmp_path: Path, saved_tiny: Path):
    result = runner.invoke(app, ["prune", "--model", str(tmp_path / "nope"), "--method", "magnitude",
                                 "--sparsity", "0.5", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "model not found" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    result = runner.invoke(app, ["prune", "--model", str(saved_tiny), "--method", "wanda", "--sparsity", "0.5",
                                 "--calib", f"text:{empty}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "empty" in result.stderr


def test_non_empty_out_is_untouched_without_overwrite(saved_tiny: Path, tmp_path: Path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    args = ["prune", "--model", str(saved_tiny), "--method", "magnitude", "--sparsity", "0.3", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert (out / "pruning_manifest.json").exists() and not (out / "keep.txt").exists()


def test_per_layer_masks_are_replayed_for_sliding_window_layers():
    """Layers of different attention types get their own mask: block-by-block replay must match."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=60, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      use_sliding_window=True, sliding_window=4, max_window_layers=1,
                      layer_types=["full_attention", "sliding_attention", "sliding_attention"])
    model = Qwen2ForCausalLM(cfg).eval()
    ids = _samples(2, length=16)
    seen = []
    last = decoder_blocks(model).layers[-1]
    handle = last.register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        for s in ids:
            model(input_ids=s[None], use_cache=False)
    handle.remove()
    calls = capture_inputs(model, ids, "cpu")
    assert all(len(c.variants) == 2 for c in calls)  # one argument set per attention type
    for i, block in enumerate(decoder_blocks(model).layers):
        for c, h in zip(calls, run_block(block, calls, "cpu", i)):
            c.hidden = h
    for c, ref in zip(calls, seen):
        torch.testing.assert_close(c.hidden, ref)


def test_linears_sharing_an_input_share_its_hessian_exactly():
    """q,k,v (and gate,up) see one tensor: its XᵀX is computed once and folded into each Hessian, which
    must equal what each Linear would accumulate alone."""
    from prunescale.prune.block_runner import hooked
    from prunescale.prune.sparsegpt import SparseGPT
    from prunescale.prune.statistics import stat_hooks

    model = tiny_model("qwen3", vocab=60)
    calls = capture_inputs(model, _samples(3), "cpu")
    block = decoder_blocks(model).layers[0]
    linears = {n: m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
    shared = {n: SparseGPT(m.in_features) for n, m in linears.items()}
    alone = {n: SparseGPT(m.in_features) for n, m in linears.items()}
    computed = []
    real = SparseGPT.summarise

    def counting(x):
        computed.append(1)
        return real(x)

    own = [m.register_forward_pre_hook(lambda _m, a, n=n: alone[n].fold(*real(a[0]))) for n, m in linears.items()]
    SparseGPT.summarise = staticmethod(counting)
    try:
        with hooked(stat_hooks(linears, shared) + own):
            run_block(block, calls, "cpu", 0)
    finally:
        SparseGPT.summarise = staticmethod(real)
    for n in linears:
        torch.testing.assert_close(shared[n].H, alone[n].H)
    assert len(computed) == 3 * 4  # per call: (q,k,v), o, (gate,up), down
