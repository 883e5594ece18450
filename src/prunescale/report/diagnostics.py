"""Two diagnostics of how a variant thinks, from each evaluation's ``samples.jsonl`` (docs/METHODS.md,
Diagnostics).

* **Thinking length vs dense**: per item, the mean thinking tokens over its seeds and samples under the
  variant minus under dense, on the items both have; the mean difference with a paired t interval (the
  differences are counts of tokens, not bounded proportions: the claims' pseudo-item adjustment assumes a
  swing of ±1 per item and would swamp a continuous spread), and the ratio of the means for readability.
* **Found-then-lost**: among the samples whose final answer is wrong, the share whose thinking already
  held the gold answer. "Held" is judged the way the answer itself is graded, never by a substring test:
  candidate answers are read from the thinking in the forms the item kind's extractor reads, and each is
  compared with the gold by the kind's own equality (Math-Verify through the grader's worker pool for
  math, the letter for multiple choice, exact for the tiny reasoner). Items are the unit: each item's share
  of found among its wrong samples, pooled by :func:`prunescale.stats.intervals.accuracy` (Wilson at the
  design-effect n), so the rate and its interval come from one procedure; the counts beside it are samples.

Why here and not in the runner: both read only what an evaluation already stored, so a report of an old
study gets them without re-running anything.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from prunescale.stats.intervals import LEVEL, accuracy
from prunescale.stats.paired import t_quantile
from prunescale.tts.grading import Grader, extract_letter, extract_math, last_boxed

Equal = Callable[[list[tuple[str, str]]], list[bool]]  # (candidate, gold) pairs → equal by the grader

# The item kind of a benchmark, where its name says it (the tiny reasoner's and GPQA); otherwise a benchmark
# whose every gold is one capital letter is multiple choice (a ``jsonl:`` file with choices), else math.
NAMED_KINDS = {"tiny": "tiny", "tiny_hard": "tiny", "gpqa_diamond": "choice"}
_LETTER = re.compile(r"^[A-Z]$")


def answer_kind(bench: str, rows: Iterable[dict]) -> str:
    """``math``, ``choice`` or ``tiny``: how the benchmark's answers are read (samples do not record it)."""
    if bench in NAMED_KINDS:
        return NAMED_KINDS[bench]
    golds = [str(r["gold"]) for r in rows]
    return "choice" if golds and all(_LETTER.match(g) for g in golds) else "math"


_OPENER = re.compile(r"\\(?:boxed|fbox)\b")
_INLINE = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_LATEX = re.compile(r"-?\d*\\sqrt\{[^{}]*\}|-?\\[dt]?frac\{[^{}]*\}\{[^{}]*\}")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


def math_candidates(thinking: str) -> set[str]:
    """Every answer a math item's thinking states, in the forms the grader's extractor reads: each
    ``\\boxed{…}`` (the grader's own brace matching), each line's "answer is / Answer:" phrase (the
    grader's extractor on the line), each inline math expression, each LaTeX fraction or root, and each
    number (a signed integer or decimal, thousands separators allowed, and a simple fraction a/b together
    with its integers)."""
    found: set[str] = set()
    openers = [m.start() for m in _OPENER.finditer(thinking)] + [len(thinking)]
    for start, end in zip(openers, openers[1:]):
        boxed = last_boxed(thinking[start:end])
        if boxed:
            found.add(boxed)
    for line in thinking.splitlines():
        phrase = extract_math(line)
        if phrase:
            found.add(phrase)
    for m in _INLINE.finditer(thinking):
        expr = next(g for g in m.groups() if g is not None).strip()
        if expr:
            found.add(expr)
    found |= {m.group(0) for m in _LATEX.finditer(thinking)}
    for m in _NUMBER.finditer(thinking):
        text = re.sub(r"\s+", "", m.group(0))
        found.add(text)
        if "/" in text:
            found |= set(text.split("/"))
    return {c for c in found if c.strip("-")}


def choice_candidates(thinking: str, n_choices: int = 4) -> set[str]:
    """The letters a multiple-choice item's thinking states as an answer: the grader's strict extractor on
    each line (a boxed letter, "Answer: X", "answer is (X)", a line that is only a letter), never a letter
    guessed from prose."""
    return {x for line in thinking.splitlines() if (x := extract_letter(line, n_choices)) is not None}


_STEP = re.compile(r"^\s*(?:[a-p][+\-*]\d=(\d)|\d+[a-j]>([a-j]))\s*$")


def tiny_candidates(thinking: str) -> set[str]:
    """The state the tiny reasoner's thinking ended in: the result of its last complete step line (arith
    ``c*7=4`` → 4, pointer ``4d>g`` → g). Only the last: an intermediate state equals the gold by chance
    about one time in ten per step, and the answer the model owes is the last step's result."""
    last = None
    for line in thinking.splitlines():
        if m := _STEP.match(line):
            last = m.group(1) or m.group(2)
    return {last} if last is not None else set()


class MathEquivalence:
    """Math-Verify through the grader's worker pool (its timeout per pair; a pair that times out is not
    equal, as a graded answer that times out is wrong), each (candidate, gold) pair judged once: the same
    thinking prefix recurs at every larger budget of a sample."""

    def __init__(self, workers: int = 2, timeout: float = 5.0) -> None:
        self.workers, self.timeout = workers, timeout
        self.cache: dict[tuple[str, str], bool] = {}
        self._grader: Grader | None = None

    def __call__(self, pairs: list[tuple[str, str]]) -> list[bool]:
        todo = list(dict.fromkeys(p for p in pairs if p not in self.cache))
        if todo:
            if self._grader is None:
                self._grader = Grader(self.workers, self.timeout)
            for pair, grade in zip(todo, self._grader.equal_many(todo)):
                self.cache[pair] = grade.correct
        return [self.cache[p] for p in pairs]

    def close(self) -> None:
        if self._grader is not None:
            self._grader.close()
            self._grader = None


def exact(pairs: list[tuple[str, str]]) -> list[bool]:
    """The choice and tiny kinds' equality: the letter, or the stripped answer, is the gold."""
    return [c.strip() == g.strip() for c, g in pairs]


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


NAN = Interval(math.nan, math.nan, math.nan)


def paired_t(d: np.ndarray, level: float = LEVEL) -> Interval:
    """Mean of the per-item differences with Student's t interval (n − 1 degrees of freedom)."""
    n = d.size
    if n == 0:
        return NAN
    m = float(d.mean())
    if n == 1:
        return Interval(m, math.nan, math.nan)
    half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return Interval(m, m - half, m + half)


def _per_item(rows: Iterable[dict], key: str) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        acc[r["item_id"]].append(float(r[key]))
    return {i: sum(v) / len(v) for i, v in acc.items()}


def thinking_vs_dense(rows: list[dict], dense: list[dict]) -> dict:
    """Thinking tokens of one variant against dense at one budget, paired on their common items."""
    mine, ref = _per_item(rows, "thinking_tokens"), _per_item(dense, "thinking_tokens")
    items = sorted(set(mine) & set(ref))
    a, b = np.array([mine[i] for i in items]), np.array([ref[i] for i in items])
    d = paired_t(a - b)
    dense_mean = float(b.mean()) if items else math.nan
    return {"paired_items": len(items), "dense_thinking_tokens": dense_mean, "thinking_delta": d.value,
            "thinking_low": d.low, "thinking_high": d.high,
            "thinking_ratio": float(a.mean()) / dense_mean if items and dense_mean > 0 else math.nan}


def found_then_lost(rows: list[dict], found: Mapping[int, bool]) -> dict:
    """Among one variant's wrong samples at one budget (``found`` by ``id`` of each wrong row), the
    per-item share whose thinking held the gold, with its interval, and the sample counts."""
    per_item: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if not r["correct"]:
            per_item[r["item_id"]].append(float(found[id(r)]))
    est = accuracy(list(per_item.values())) if per_item else None
    return {"wrong": sum(len(v) for v in per_item.values()), "lost": int(sum(sum(v) for v in per_item.values())),
            "wrong_items": len(per_item), "lost_rate": est.value if est else math.nan,
            "lost_low": est.low if est else math.nan, "lost_high": est.high if est else math.nan}


def _judge(rows: list[dict], kind: str, equal: Equal) -> dict[int, bool]:
    """Whether each wrong row's thinking held its gold: every candidate judged by ``equal`` in one call."""
    n_choices = max([4] + [ord(str(r["gold"])) - ord("A") + 1 for r in rows if _LETTER.match(str(r["gold"]))])
    read = {"math": math_candidates, "tiny": tiny_candidates,
            "choice": lambda text: choice_candidates(text, n_choices)}[kind]
    asked: dict[int, list[tuple[str, str]]] = {}
    for r in rows:
        if not r["correct"]:
            gold, found = str(r["gold"]).strip(), read(r.get("thinking") or "")
            # the gold itself among the candidates is equal without asking (Math-Verify only costs time there)
            asked[id(r)] = [(gold, gold)] if gold in found else [(c, gold) for c in sorted(found)]
    pairs = list(dict.fromkeys(p for ps in asked.values() for p in ps if p[0] != p[1]))
    verdict = dict(zip(pairs, equal(pairs) if pairs else []))
    return {key: any(c == g or verdict[(c, g)] for c, g in ps) for key, ps in asked.items()}


def diagnose(samples: Mapping[tuple[str, str], list[dict]], dense: str | None, math_equal: Equal,
             kinds: Mapping[str, str] | None = None) -> list[dict]:
    """One row per variant × benchmark × budget: both diagnostics (thinking columns NaN for dense, or
    without a dense variant). ``math_equal`` judges math candidates (:class:`MathEquivalence`); ``kinds``:
    each benchmark's item kind as recorded by the study (else guessed, :func:`answer_kind`)."""
    out = []
    for bench in dict.fromkeys(b for _, b in samples):
        runs = {v: rows for (v, b), rows in samples.items() if b == bench}
        every = [r for rows in runs.values() for r in rows]
        kind = (kinds or {}).get(bench) or answer_kind(bench, every)
        found = _judge(every, kind, math_equal if kind == "math" else exact)
        ref = runs.get(dense) if dense is not None else None
        for v, rows in runs.items():
            by_budget: dict[int, list[dict]] = defaultdict(list)
            for r in rows:
                by_budget[r["budget"]].append(r)
            for b in sorted(by_budget):
                here = by_budget[b]
                row = {"variant": v, "benchmark": bench, "answer_kind": kind, "budget": b,
                       "thinking_tokens": sum(r["thinking_tokens"] for r in here) / len(here),
                       "paired_items": 0, "dense_thinking_tokens": math.nan, "thinking_delta": math.nan,
                       "thinking_low": math.nan, "thinking_high": math.nan, "thinking_ratio": math.nan}
                if ref is not None and v != dense:
                    row |= thinking_vs_dense(here, [r for r in ref if r["budget"] == b])
                out.append(row | found_then_lost(here, found))
    return out


COLUMNS = ("variant", "benchmark", "answer_kind", "budget", "thinking_tokens", "paired_items",
           "dense_thinking_tokens", "thinking_delta", "thinking_low", "thinking_high", "thinking_ratio", "wrong",
           "lost", "wrong_items", "lost_rate", "lost_low", "lost_high")
