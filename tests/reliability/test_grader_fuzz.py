"""Fuzzing extraction and grading: no exception escapes, no grade outlives its timeout, same input → same
result. Inputs: random unicode, deeply nested braces, 10⁵-digit numbers, LaTeX that SymPy chokes on."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunescale.tts.grading import Grader, extract_letter, extract_math, last_boxed

LATEX = [r"\frac{", r"\sqrt{", r"\boxed{", r"\left(", r"\right)", "}", "{", "^", "_", r"\int",
         r"\sum_{n=1}^{\infty}", r"\text{", r"\\", "$", "Answer:", "answer is", r"\fbox", "9^{9^{9}}",
         r"\begin{pmatrix}", "&", r"\end{pmatrix}", "x=", ",", "%", r"\%", r"\$", r"\pi", "e^{i\\pi}", "(", ")",
         "A", "(B)", r"\boxed{C}", "0.5", "-"]

latex_soup = st.lists(st.sampled_from(LATEX) | st.text(max_size=5), max_size=40).map("".join)
nested = st.integers(0, 3000).map(lambda n: r"\boxed{" + "{" * n + "1" + "}" * n + "}")
huge = st.integers(1, 100_000).map(lambda n: r"\boxed{" + "7" * n + "}")
inputs = st.one_of(st.text(max_size=300), latex_soup, nested, huge)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(inputs)
def test_extraction_never_raises_and_is_deterministic(text):
    a = (extract_math(text), extract_letter(text), last_boxed(text))
    assert a == (extract_math(text), extract_letter(text), last_boxed(text))
    if a[0] is not None:
        assert isinstance(a[0], str)
    if a[1] is not None:
        assert a[1] in "ABCD"


def _fuzz_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    golds = ["42", r"\frac{1}{2}", r"\sqrt{2}", "(1,2)", r"\pi", "x=3", "10\\%", "1000"]
    pairs = []
    for i in range(n):
        kind = 5 if i % 1000 == 999 else i % 5  # 10 of 10 000 are SymPy-stalling expressions (each a timeout)
        if kind == 0:
            pred = "".join(rng.choice(LATEX) for _ in range(rng.randint(1, 12)))
        elif kind == 1:
            pred = "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 30)))
        elif kind == 2:
            pred = "{" * rng.randint(1, 400) + "1" + "}" * rng.randint(1, 400)
        elif kind == 3:
            pred = str(rng.randint(0, 9)) * rng.randint(1, 2000)
        elif kind == 4:
            pred = rng.choice(golds)
        else:
            pred = rng.choice(["9^{9^{9^{9}}}", r"10^{10^{10}}!", r"\sum_{n=1}^{10^{9}} n^{n}", "0.5", "1/2"])
        pairs.append((pred, rng.choice(golds)))
    return pairs


@pytest.mark.slow
def test_grading_fuzz_has_no_escape_and_respects_the_timeout():
    pairs = _fuzz_pairs(10_000)
    with Grader(workers=2, timeout=2.0) as grader:
        t0 = time.perf_counter()
        grades = grader.equal_many(pairs)
        elapsed = time.perf_counter() - t0
        again = grader.equal_many(pairs[:300])
    assert len(grades) == len(pairs)
    assert {g.status for g in grades} <= {"ok", "timeout", "grader_error"}
    timeouts = sum(g.status == "timeout" for g in grades)
    assert timeouts >= 1  # the timeout path ran
    assert [g.correct for g in again] == [g.correct for g in grades[:300]]  # deterministic
    # every grade ended within its timeout: the whole batch took at most (timeouts × (timeout + restart)) + work
    assert elapsed < timeouts * 6.0 + 0.05 * len(pairs)
    print(f"\nfuzz cases: {len(pairs)} graded ({timeouts} timeouts) + 10000 extracted, {elapsed:.0f} s")
    same = [g for (p, gold), g in zip(pairs, grades) if p == gold and g.status == "ok"]
    assert same and all(g.correct for g in same)  # a gold answer always grades as correct
