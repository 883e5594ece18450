"""Parallel-scaling metrics over n samples per item.

* pass@k: the unbiased estimator 1 − C(n−c, k)/C(n, k) (Chen et al. 2021), c correct of n;
* cov@k: whether any of the first k samples is correct;
* maj@k: whether the majority answer of the first k samples (equivalent answers grouped) is correct.
"""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..n ({n}), got {k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def cov_at_k(correct: list[bool], k: int) -> float:
    return float(any(correct[:k]))


def maj_at_k(answers: list[str | None], correct: list[bool], k: int, equal) -> float:
    """``equal(a, b)`` decides equivalence; ties go to the earliest group; None answers never win."""
    groups: list[list[int]] = []
    for i, a in enumerate(answers[:k]):
        if a is None:
            continue
        for g in groups:
            if equal(a, answers[g[0]]):
                g.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return 0.0
    best = max(groups, key=len)
    return float(correct[best[0]])
