"""The shipped tiny reasoner: a plain HF folder that really solves its problems and needs its thinking."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from prunescale.models.registry import TINY_REASONER_DIR
from prunescale.toy.evaluate import answer, force_wait, solve_full, think
from prunescale.toy.tasks import sample_problems


@pytest.fixture(scope="module")
def shipped():
    model = AutoModelForCausalLM.from_pretrained(TINY_REASONER_DIR).eval()  # no prunescale import needed
    tok = AutoTokenizer.from_pretrained(TINY_REASONER_DIR)
    return model, tok


def test_checkpoint_is_a_small_qwen3_folder(shipped):
    model, _ = shipped
    assert model.config.model_type == "qwen3"
    assert model.config.num_hidden_layers >= 6
    size = sum(f.stat().st_size for f in TINY_REASONER_DIR.iterdir())
    assert size < 20 * 2**20
    assert json.loads((TINY_REASONER_DIR / "behaviour.json").read_text())["full"]["accuracy"] >= 0.95


def test_solves_a_handful_with_full_thinking(shipped):
    model, tok = shipped
    graded = solve_full(model, tok, sample_problems("test", 24, seed=5))
    assert sum(g.correct for g in graded) >= 22
    assert all(not g.forced_end for g in graded)


def test_accuracy_needs_thinking(shipped):
    """Budget 0 is near chance, a budget past every trace is near perfect (60 items, wide margins)."""
    model, tok = shipped
    traces = think(model, tok, sample_problems("test", 60, seed=6))
    acc = {b: sum(g.correct for g in answer(model, tok, traces, b)) / 60 for b in (0, 24, 96)}
    assert acc[0] < 0.4
    assert acc[0] <= acc[24] <= acc[96]
    assert acc[96] > 0.9


def test_truncation_equals_literal_budget_forcing(shipped):
    """Cutting one long greedy trace at B == generating with a cap of B (what the sweep relies on)."""
    model, tok = shipped
    problems = sample_problems("test", 16, seed=7)
    long = think(model, tok, problems, max_think=256)
    capped = think(model, tok, problems, max_think=18)
    for a, b in zip(long, capped):
        assert a.think_ids[:18] == b.think_ids
    graded_long = answer(model, tok, long, 18)
    graded_capped = answer(model, tok, capped, 18)
    assert [g.answer for g in graded_long] == [g.answer for g in graded_capped]


def test_forced_wait_keeps_answers(shipped):
    model, tok = shipped
    traces = think(model, tok, sample_problems("test", 24, seed=8))
    before = answer(model, tok, traces, None)
    waited = force_wait(model, tok, traces)
    after = answer(model, tok, waited, None)
    assert all(len(w.think_ids) > len(t.think_ids) for w, t in zip(waited, traces) if t.closed)
    assert sum(g.correct for g in after) >= sum(g.correct for g in before) - 1
