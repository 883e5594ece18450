"""What the tiny reasoner must demonstrably do, measured in one call.

* accuracy near the answer prior at budget 0 and rising with the thinking budget (budgets are multiples
  of a 6-token step line);
* ≥ 95 % with its full natural thinking;
* one forced "Wait" after a natural end does not lower accuracy;
* a ``hard`` split (more steps than training) where it is below 100 %, so a pruned model has room to beat it.

Used by ``benchmarks/tiny_reasoner.py``, by ``prunescale demo`` and to write the ``behaviour.json``
shipped beside the weights.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunescale.stats.intervals import accuracy
from prunescale.toy.evaluate import Graded, solve
from prunescale.toy.tasks import Problem, sample_problems

DEFAULT_BUDGETS = (0, 12, 24, 36, 48, 60, 72, 96)


def answer_prior(problems: Sequence[Problem]) -> float:
    """Accuracy of always answering each task kind's most frequent gold answer (the no-thinking floor)."""
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for p in problems:
        by_kind[p.kind][p.answer] += 1
    return sum(c.most_common(1)[0][1] for c in by_kind.values()) / max(1, len(problems))


def summarise(graded: Sequence[Graded]) -> dict:
    est = accuracy([[float(g.correct)] for g in graded])
    acc, low, high = est.value, est.low, est.high
    n = max(1, len(graded))
    return {
        "accuracy": round(acc, 4),
        "ci95": [round(low, 4), round(high, 4)],
        "mean_think_tokens": round(sum(g.think_tokens for g in graded) / n, 2),
        "forced_end_rate": round(sum(g.forced_end for g in graded) / n, 4),
    }


def _by(graded: Sequence[Graded], key: Callable[[Graded], object]) -> dict[str, float]:
    groups: dict[object, list[bool]] = defaultdict(list)
    for g in graded:
        groups[key(g)].append(g.correct)
    return {str(k): round(sum(v) / len(v), 4) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def measure(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    n: int = 500,
    hard_n: int = 200,
    seed: int = 0,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    max_think: int = 256,
    batch_size: int = 64,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict:
    """Budget curve, full-thinking accuracy, forced-Wait effect and hard-split accuracy (greedy)."""
    t0 = time.perf_counter()
    problems = sample_problems("test", n, seed=seed)
    log(f"budget sweep on {n} test items (greedy, up to {max_think} thinking tokens)")
    traces, graded = solve(model, tok, problems, sorted({*budgets, max_think}), batch_size=batch_size)
    curve = [{"budget": b, **summarise(graded[b])} for b in budgets]
    full = graded[max_think]
    t_sweep = time.perf_counter() - t0
    log("forcing one 'Wait' after each natural end")
    wait_graded = solve(model, tok, problems, [max_think], wait_rounds=1, batch_size=batch_size)[1][max_think]
    changed = sum(a.answer != b.answer for a, b in zip(full, wait_graded))
    log(f"hard split: {hard_n} items with more steps than training")
    hard_problems = sample_problems("hard", hard_n, seed=seed)
    hard = solve(model, tok, hard_problems, [max_think], batch_size=batch_size)[1][max_think]
    return {
        "items": n,
        "seed": seed,
        "answer_prior": round(answer_prior(problems), 4),
        "curve": curve,
        "full": {
            **summarise(full),
            "by_k": _by(full, lambda g: g.problem.k),
            "by_kind": _by(full, lambda g: g.problem.kind),
            "never_closed_rate": round(sum(t.natural_end is None for t in traces) / n, 4),
            "self_wait_rate": round(sum(g.said_wait for g in full) / n, 4),
        },
        "forced_wait": {
            **summarise(wait_graded),
            "answers_changed": changed,
            "extra_tokens": round(sum(w.think_tokens - f.think_tokens for w, f in zip(wait_graded, full)) / n, 2),
        },
        "hard": {"items": hard_n, "k_range": [min(p.k for p in hard_problems), max(p.k for p in hard_problems)],
                 **summarise(hard), "by_kind": _by(hard, lambda g: g.problem.kind)},
        "seconds": {"sweep_total": round(t_sweep, 2),
                    "all": round(time.perf_counter() - t0, 2)},
    }
