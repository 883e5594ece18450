"""The tiny reasoner's task generator: determinism, disjoint splits, exact verifier."""

from __future__ import annotations

import random

import pytest

from prunescale.toy.tasks import (
    HARD_K,
    TRAIN_K,
    make_problem,
    sample_problems,
    solve,
    verify,
)


def test_same_seed_same_problems_other_seed_differs():
    a = sample_problems("test", 50, seed=3)
    assert a == sample_problems("test", 50, seed=3)
    assert [p.prompt for p in a] != [p.prompt for p in sample_problems("test", 50, seed=4)]


def test_splits_are_disjoint_by_prompt():
    sizes = {"train": 3000, "validation": 1000, "test": 1000}
    sets = {s: {p.prompt for p in sample_problems(s, n)} for s, n in sizes.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]


def test_step_ranges_and_kind_mix():
    test = sample_problems("test", 400)
    assert {p.k for p in test} == set(range(TRAIN_K[0], TRAIN_K[1] + 1))
    assert {p.kind for p in test} == {"arith", "ptr"}
    hard = sample_problems("hard", 100)
    assert min(p.k for p in hard) >= HARD_K[0] and max(p.k for p in hard) <= HARD_K[1]


@pytest.mark.parametrize("kind", ["arith", "ptr", "ptr_shuffled"])
def test_trace_is_consistent_with_answer(kind):
    rng = random.Random(0)
    for k in range(1, 17):
        p = make_problem(rng, kind, k)
        assert len(p.steps) == k
        assert p.trace().count("\n") == k
        last = p.steps[-1]
        assert last.endswith(p.answer)  # the last step line carries the final state
        assert solve(p.prompt) == p.answer


@pytest.mark.parametrize(
    "prompt, answer, ok",
    [
        ("x=3;a-5;b+4;c*7", "4", True),  # 3-5=8, 8+4=2, 2*7=14 -> 4
        ("x=3;a-5;b+4;c*7", " 4 ", True),  # whitespace is not an error
        ("x=3;a-5;b+4;c*7", "2", False),
        ("x=3;a-5;b+4;c*7", "", False),
        ("x=3;a-5;b+4;c*7", "44", False),
        ("a>b,b>c,c>a;a;2", "c", True),
        ("a>b,b>c,c>a;a;3", "a", True),
        ("a>b,b>c,c>a;a;3", "b", False),
        ("a>b,b>c;c;1", "a", False),  # malformed (c has no edge): never accepted
    ],
)
def test_verifier_table(prompt, answer, ok):
    assert verify(prompt, answer) is ok


def test_verifier_accepts_gold_and_rejects_every_perturbation():
    for p in sample_problems("validation", 200):
        assert verify(p.prompt, p.answer)
        alphabet = "0123456789" if p.kind == "arith" else "abcdefghij"
        assert not any(verify(p.prompt, a) for a in alphabet if a != p.answer)


def test_answers_are_close_to_uniform():
    """The answer prior must stay near chance so budget 0 means 'guessing'."""
    from prunescale.toy.behaviour import answer_prior

    assert answer_prior(sample_problems("test", 2000)) < 0.2


def test_bad_arguments():
    with pytest.raises(ValueError):
        sample_problems("nope", 1)
    with pytest.raises(ValueError):
        make_problem(random.Random(0), "arith", 17)
