"""Grading on a table of real, messy answer phases (tests/data/grading_cases.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunescale.tts.grading import Grader, extract_letter, extract_math, last_boxed

CASES = json.loads((Path(__file__).parent / "data" / "grading_cases.json").read_text())


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout=10.0) as g:
        yield g


def test_enough_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CASES)])
def test_extraction(case):
    text = case["output"]
    if case["kind"] == "math":
        got = extract_math(text) if text is not None else None
    else:
        got = extract_letter(text) if text is not None else None
    assert got == case["extracted"]


def test_grades(grader):
    math = [c for c in CASES if c["kind"] == "math"]
    graded = grader.grade_math([c["output"] for c in math], [c["gold"] for c in math])
    wrong = [(c["output"], c["gold"], g.status) for c, (_, g) in zip(math, graded) if g.correct != c["correct"]]
    assert not wrong
    for c, (_, g) in zip(math, graded):
        if c["extracted"] is None:
            assert g.status == "no_answer"
    for c in (c for c in CASES if c["kind"] == "letter"):
        got = extract_letter(c["output"]) if c["output"] is not None else None
        assert (got == c["gold"]) is c["correct"]


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
    assert grader.majority(["0.5", "\\frac{1}{2}", "3", "1/2", "3"]) == "0.5"
    assert grader.majority([None, None]) is None


def test_a_restarted_worker_start_up_is_not_counted_against_the_next_item():
    # A spawn worker takes ~0.4 s here (more on a loaded machine) to import Math-Verify and SymPy: with a
    # 0.25 s timeout, the item after each restart timed out too, and a run of 10 000 items never ended.
    with Grader(workers=1, timeout=0.25) as g:
        grades = g.equal_many([("1", "1"), ("9^{9^{9^{9}}}", "1"), ("1/2", r"\frac{1}{2}"), ("2", "3"),
                               ("9^{9^{9^{9}}}", "2"), ("5", "5")])
    assert [x.status for x in grades] == ["ok", "timeout", "ok", "ok", "timeout", "ok"]
    assert [x.correct for x in grades] == [True, False, True, False, False, True]
