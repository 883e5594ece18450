"""The shipped tiny reasoner: a plain HF folder that really solves its problems and needs its thinking."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from prunescale.models.registry import TINY_REASONER_DIR
from prunescale.toy.evaluate import accuracy, solve
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


def test_solves_a_handful_with_full_thinking(shipped):
    model, tok = shipped
    graded = solve(model, tok, sample_problems("test", 24, seed=5), [256])[1][256]
    assert sum(g.correct for g in graded) >= 22
    assert all(not g.forced_end for g in graded)


def test_accuracy_needs_thinking(shipped):
    """Budget 0 is near chance, a budget past every trace is near perfect (60 items, wide margins)."""
    model, tok = shipped
    graded = solve(model, tok, sample_problems("test", 60, seed=6), [0, 24, 96])[1]
    acc = {b: accuracy(g) for b, g in graded.items()}
    assert acc[0] < 0.4
    assert acc[0] <= acc[24] <= acc[96]
    assert acc[96] > 0.9


def test_truncation_equals_literal_budget_forcing(shipped):
    """Cutting one long greedy trace at B == generating with a cap of B (what the sweep relies on)."""
    model, tok = shipped
    problems = sample_problems("test", 16, seed=7)
    long_trajs, swept = solve(model, tok, problems, [18, 256])
    capped_trajs, capped = solve(model, tok, problems, [18])
    for a, b in zip(long_trajs, capped_trajs):
        assert a.kept(18) == b.kept(18)
    assert [(g.answer, g.forced_end) for g in swept[18]] == [(g.answer, g.forced_end) for g in capped[18]]


def test_forced_wait_keeps_answers(shipped):
    model, tok = shipped
    problems = sample_problems("test", 24, seed=8)
    trajs, before = solve(model, tok, problems, [256])
    waited, after = solve(model, tok, problems, [256], wait_rounds=1)
    assert all(w.waits == 1 and len(w.kept(256)) > len(t.kept(256)) for w, t in zip(waited, trajs)
               if t.natural_end is not None)
    assert sum(g.correct for g in after[256]) >= sum(g.correct for g in before[256]) - 1


@pytest.mark.slow
def test_shipped_behaviour_json_is_what_the_model_does_now(shipped):
    """behaviour.json (the README's curve) re-measured with the code as it is: every figure equal, so the
    committed numbers cannot drift from the model and the evaluator."""
    from prunescale.toy.behaviour import measure

    shipped_json = json.loads((TINY_REASONER_DIR / "behaviour.json").read_text())
    model, tok = shipped
    now = measure(model, tok, n=shipped_json["items"], hard_n=shipped_json["hard"]["items"], seed=shipped_json["seed"])
    for key in ("answer_prior", "curve", "full", "forced_wait", "hard"):
        assert now[key] == shipped_json[key], key
    assert now["full"]["accuracy"] >= 0.95
