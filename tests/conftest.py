"""Shared fixtures: tiny random-weight models of the architectures we support, built in code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from prunescale import plugins

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch.set_num_threads(min(2, torch.get_num_threads()))
plugins.load()  # the tiny reasoner's benchmark, item kind and calibration sources, as the CLI has them

ARCHS = ("llama", "qwen2", "qwen3")


def tiny_config(arch: str, layers: int = 2, hidden: int = 64, vocab: int = 128):
    """A 2-layer, hidden-64 config of the given family (random weights are made by the caller)."""
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}[arch]
    extra = {"head_dim": hidden // 4} if arch == "qwen3" else {}
    return cls(**common, **extra)


def tiny_model(arch: str, seed: int = 0, **kw):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(arch, **kw)).eval()


def save_tiny(folder: Path, arch: str = "qwen3", layers: int = 2) -> Path:
    """A tiny random model of ``arch`` saved with the tiny reasoner's tokenizer: a folder any command loads."""
    from prunescale.toy.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tiny_model(arch, layers=layers, vocab=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def char_tokenizer():
    """A real (tiny) fast tokenizer to save beside random models: the tiny reasoner's."""
    from prunescale.toy.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def saved_tiny(tmp_path: Path, arch: str, char_tokenizer) -> Path:
    """A tiny random model of ``arch`` saved as a normal HF folder with a tokenizer."""
    model = tiny_model(arch, vocab=len(char_tokenizer))
    folder = tmp_path / f"tiny-{arch}"
    model.save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def scripted(tmp_path_factory):
    """``scripted(family, name=None, **script)`` → the folder of a scripted checkpoint (built once per script;
    see prunescale.toy.scripted). ``name`` is the folder's name (s1 folders are recognised by theirs)."""
    from prunescale.toy.scripted import Script, build

    built: dict = {}

    def make(family: str, name: str | None = None, **kw) -> Path:
        script = Script(family, **kw)
        key = (script, name)
        if key not in built:
            folder = tmp_path_factory.mktemp("scripted") / (name or f"{family}-scripted")
            built[key] = build(script, folder)
        return built[key]

    return make
