"""The packed integer folder (``--save-format packed``): compressed-tensors' pack-quantized layout written from
our own group parameters, read back into a transformers model with exactly the dequantized weights, its
codes checked against the layout vLLM reads (nibble i of int32 word j is input column 8j + i), refused
cleanly where it cannot be written, and checked against the dequantized folder before a run keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from conftest import save_tiny, tiny_config, tiny_model
from prunescale.cli import app
from prunescale.errors import PrunescaleError
from prunescale.models.anatomy import prunable_linears
from prunescale.models.loader import load_model
from prunescale.prune.quantization import quantize_gptq, quantize_rtn
from prunescale.toy.tokenizer import build_tokenizer

pytest.importorskip("compressed_tensors")

from prunescale.models import packed  # noqa: E402  (after the skip: it needs compressed-tensors)

runner = CliRunner()
CAL = ["--calib", "tiny", "--nsamples", "4", "--seqlen", "32"]


def _quantized(arch: str, bits: int, group: int, gptq: bool = False, tied: bool = False):
    """A tiny random model of ``arch`` with half of every Linear zeroed (a pruning mask), quantized in place;
    returns it, its group parameters and its dequantized weights."""
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    config = tiny_config(arch, vocab=len(tok))
    config.tie_word_embeddings = tied
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for lin in prunable_linears(model).values():
            lin.weight[torch.rand_like(lin.weight) < 0.5] = 0.0
    qparams: dict = {}
    if gptq:
        samples = [torch.randint(0, len(tok), (1, 24)) for _ in range(4)]
        quantize_gptq(model, samples, progress=False, bits=bits, group_size=group, qparams=qparams)
    else:
        quantize_rtn(model, bits=bits, group_size=group, qparams=qparams)
    return model, tok, qparams


def _save_both(tmp_path: Path, model, tok, qparams, bits: int, group: int) -> tuple[Path, Path]:
    plain, pk = tmp_path / "dequantized", tmp_path / "packed"
    model.save_pretrained(plain)
    tok.save_pretrained(plain)
    record = packed.save_packed(model, tok, pk, qparams, bits, group)
    assert record["modules"] == len(qparams) == 14 and record["ignored"] == ["lm_head"]
    return plain, pk


@pytest.mark.parametrize("arch, bits, group, gptq, tied", [
    ("llama", 4, 32, False, False), ("qwen2", 4, -1, True, False), ("qwen3", 8, 16, True, True)])
def test_a_packed_folder_reads_back_with_exactly_the_dequantized_weights(tmp_path, arch, bits, group, gptq, tied):
    model, tok, qparams = _quantized(arch, bits, group, gptq, tied)
    plain, pk = _save_both(tmp_path, model, tok, qparams, bits, group)
    a, b = load_model(str(plain), dtype="fp32").model, load_model(str(pk), dtype="fp32").model
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    x = torch.randint(0, a.config.vocab_size, (2, 10))
    assert torch.equal(a(x).logits, b(x).logits)
    assert packed.verify_packed(pk, plain) == 14


def test_the_packed_layout_is_the_one_vllm_reads(tmp_path):
    """Unpacked by hand (not by the library that wrote it): signed 4-bit codes, eight to an int32 along the
    input columns, zero points packed the same way along the output rows, scales per (row, group)."""
    from prunescale.prune.quantize import Quantized

    model, tok, qparams = _quantized("llama", 4, 32)
    weights = {n: m.weight.detach().clone() for n, m in prunable_linears(model).items()}
    _, pk = _save_both(tmp_path, model, tok, qparams, 4, 32)
    config = json.loads((pk / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["format"]) == ("compressed-tensors", "pack-quantized")
    group = config["config_groups"]["group_0"]["weights"]
    assert (group["num_bits"], group["group_size"], group["symmetric"], group["strategy"]) == (4, 32, False, "group")

    def unpack(words: torch.Tensor) -> torch.Tensor:  # (r, c/8) int32 → (r, c) signed codes
        nibbles = torch.stack([(words >> (4 * i)) & 0xF for i in range(8)], dim=-1)
        return nibbles.reshape(words.shape[0], -1) - 8

    tensors = load_file(pk / "model.safetensors")
    for name, (scale, zero) in qparams.items():
        codes = Quantized(weights[name], scale, zero, 32).codes()
        assert torch.equal(unpack(tensors[f"{name}.weight_packed"]), codes - 8), name
        zp = tensors[f"{name}.weight_zero_point"]  # packed along the rows: transpose, unpack, transpose back
        assert torch.equal(unpack(zp.t().contiguous()).t(), zero.to(torch.int32) - 8), name
        assert torch.equal(tensors[f"{name}.weight_scale"], scale), name
        assert tensors[f"{name}.weight_shape"].tolist() == list(weights[name].shape)


def test_a_tampered_packed_folder_fails_verification(tmp_path):
    model, tok, qparams = _quantized("llama", 4, 32)
    plain, pk = _save_both(tmp_path, model, tok, qparams, 4, 32)
    tensors = load_file(pk / "model.safetensors")
    key = "model.layers.1.mlp.down_proj.weight_packed"
    tensors[key][3, 0] ^= 0x10  # one code of one weight moved by one step
    save_file(tensors, pk / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(PrunescaleError, match="down_proj does not hold"):
        packed.verify_packed(pk, plain)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("m") / "tiny", "qwen3", 2)


def _same_logits(a: Path, b: Path) -> None:
    ma, mb = load_model(str(a), dtype="fp32").model, load_model(str(b), dtype="fp32").model
    x = torch.randint(0, ma.config.vocab_size, (1, 12))
    assert torch.equal(ma(x).logits, mb(x).logits)


@pytest.mark.parametrize("command", [
    ["prune", "--method", "wanda", "--sparsity", "0.5", "--quantize", "gptq", "--group-size", "32", *CAL],
    ["prune", "--method", "reverse", "--remove-layers", "1", "--quantize", "rtn", "--bits", "8", "--group-size", "32"],
    ["quantize", "--quantize", "gptq", "--group-size", "-1", *CAL],
])
def test_every_command_that_quantizes_writes_a_checked_packed_folder(tmp_path, model_dir, command):
    out = tmp_path / "o"
    r = runner.invoke(app, [*command, "--model", str(model_dir), "--save-format", "packed", "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "pruning_manifest.json").read_text())
    assert m["packed"]["verified_modules"] == m["packed"]["modules"] > 0 and m["packed"]["folder"] == "packed"
    assert json.loads((out / "packed" / "pruning_manifest.json").read_text()) == m
    _same_logits(out, out / "packed")
    again = runner.invoke(app, ["quantize", "--model", str(out / "packed"), "--quantize", "rtn", "--group-size", "-1",
                                "--out", str(tmp_path / "x")])
    assert again.exit_code == 2 and "already quantized" in again.output


@pytest.mark.parametrize("args, message", [
    (["--method", "wanda", "--sparsity", "0.5", "--save-format", "packed"], "give --quantize"),
    (["--method", "none", "--quantize", "rtn", "--bits", "3", "--save-format", "packed"], "not 3"),
    (["--method", "none", "--quantize", "rtn", "--save-format", "packd"], "save-format"),
])
def test_bad_packed_requests_are_one_line_exit_2_before_any_model_loads(tmp_path, monkeypatch, args, message):
    import prunescale.models.loader as loader

    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    out = tmp_path / "o"
    r = runner.invoke(app, ["prune", "--model", "tiny-reasoner", *args, "--out", str(out)])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not out.exists()


def test_without_compressed_tensors_the_packed_format_is_refused_up_front(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "compressed_tensors" else real(n, *a))
    r = runner.invoke(app, ["quantize", "--model", "tiny-reasoner", "--quantize", "rtn", "--save-format", "packed",
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "pip install 'prunescale[packed]'" in r.output, r.output


def test_a_bf16_model_packs_its_codes_with_bf16_scales(tmp_path):
    """The scale is stored in the saved dtype, so in bf16 the packed weights differ from the dequantized ones
    by the scale's own rounding: far below a step (the run's check), never a different code."""
    tok = build_tokenizer()
    src = tmp_path / "bf16"
    tiny_model("llama", vocab=len(tok)).to(torch.bfloat16).save_pretrained(src)
    tok.save_pretrained(src)
    out = tmp_path / "o"
    r = runner.invoke(app, ["quantize", "--model", str(src), "--quantize", "gptq", "--group-size", "32", *CAL,
                            "--save-format", "packed", "--out", str(out)])
    assert r.exit_code == 0, r.output
    tensors = load_file(out / "packed" / "model.safetensors")
    assert tensors["model.layers.0.mlp.up_proj.weight_scale"].dtype == torch.bfloat16
    a = load_model(str(out), dtype="auto").model
    b = load_model(str(out / "packed"), dtype="auto").model
    assert next(b.parameters()).dtype == torch.bfloat16
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(wa.float(), wb.float(), rtol=2**-7, atol=0), name


def test_reading_a_packed_folder_without_compressed_tensors_is_one_clear_error(tmp_path, monkeypatch):
    import importlib.util

    model, tok, qparams = _quantized("llama", 4, 32)
    _, pk = _save_both(tmp_path, model, tok, qparams, 4, 32)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "compressed_tensors" else real(n, *a))
    with pytest.raises(PrunescaleError, match=r"install compressed-tensors \(pip install 'prunescale\[packed\]'\)"):
        load_model(str(pk))
