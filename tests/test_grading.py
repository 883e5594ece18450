"""Grading on a table of real, messy answer phases (tests/data/grading_cases.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunescale.tts.benchmarks import Item
from prunescale.tts.forcing import BudgetResult
from prunescale.tts.grading import Grader, extract_letter, extract_math, last_boxed
from prunescale.tts.kinds import KINDS
from prunescale.tts.metrics import maj_at_k
from prunescale.tts.run import grade

CASES = json.loads((Path(__file__).parent / "data" / "grading_cases.json").read_text())


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout=10.0) as g:
        yield g


def test_enough_cases():
    assert len(CASES) >= 60


def _item(case) -> Item:
    choices = ("w", "x", "y", "z") if case["kind"] == "letter" else ()
    return Item("i", "q", case["gold"], "choice" if case["kind"] == "letter" else "math", choices)


def _graded(case, grader):
    """What evaluation records for this answer phase: prunescale.tts.run.grade, as every eval calls it."""
    result = BudgetResult(64, 10, False, 0, [], "", case["output"] or "", "stop")
    return grade(_item(case), result, grader)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CASES)])
def test_extraction(case):
    text = case["output"]
    if case["kind"] == "math":
        got = extract_math(text) if text is not None else None
    else:
        got = extract_letter(text) if text is not None else None
    assert got == case["extracted"]


def test_grades_through_the_evaluators_grade(grader):
    wrong = []
    for c in CASES:
        extracted, correct, status = _graded(c, grader)
        if (extracted, correct) != (c["extracted"], c["correct"]):
            wrong.append((c["output"], c["gold"], extracted, correct, status))
        assert (status == "no_answer") == (c["extracted"] is None), c
    assert not wrong


def test_nested_braces_and_escaped_braces():
    assert last_boxed(r"\boxed{\frac{a}{b}} and \boxed{\{1\}}") == r"\{1\}"
    assert last_boxed("no box here") is None


def test_timeout_kills_a_stuck_worker_and_grades_the_rest():
    with Grader(workers=1, timeout=1.5) as g:
        g.equal_many([("1", "1")])  # start the worker before timing matters
        grades = g.equal_many([("2", "2"), ("9^{9^{9^{9}}}", "1"), ("3", "4"), ("5", "5")])  # SymPy stalls on 9↑↑4
    assert [x.correct for x in grades] == [True, False, False, True]
    assert [x.status for x in grades] == ["ok", "timeout", "ok", "ok"]


def test_majority_groups_equivalent_answers(grader):
    """maj@k as the summary computes it: answers grouped by their kind's equality (Math-Verify for math)."""
    math = KINDS["math"]
    same = lambda a, b: math.same(a, b, grader)  # noqa: E731
    answers = ["0.5", "\\frac{1}{2}", "3", "1/2", "3"]
    assert maj_at_k(answers, [True, True, False, True, False], 5, same) == 1.0  # 0.5 × 3 beats 3 × 2
    assert maj_at_k(answers, [False, False, True, False, True], 5, lambda a, b: a == b) == 1.0  # by string: "3" wins
    assert maj_at_k([None, None], [False, False], 2, same) == 0.0
    assert not KINDS["choice"].same("A", "B", grader) and KINDS["choice"].same("C", "C", grader)


def test_a_grading_exception_is_its_own_status_not_ok(monkeypatch):
    """Math-Verify raising used to become string equality graded `ok`; it is `grader_error` now (and an
    answer is correct then only if it is the gold string itself)."""
    import math_verify

    from prunescale.tts.grading import math_equal_inline

    def boom(*_a, **_k):
        raise RecursionError("sympy gave up")

    monkeypatch.setattr(math_verify, "verify", boom)
    assert math_equal_inline("42", "42") == (True, "grader_error")
    assert math_equal_inline("0.5", r"\frac{1}{2}") == (False, "grader_error")
    monkeypatch.undo()
    assert math_equal_inline("0.5", r"\frac{1}{2}") == (True, "ok")
    assert math_equal_inline("no math here", "no math here") == (True, "ok")  # nothing to parse: strings
