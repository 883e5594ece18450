"""Answer extraction and grading: only the answer phase is graded, never the thinking.

* Only what the model generated is read: a forced end's cue (``Final Answer: \\boxed{``) completes a box
  the model fills, but is never itself an answer; an empty or unclosed box is no answer.
* Math: the last ``\\boxed{…}`` (braces balanced, nesting allowed), else the last "Answer:" / "answer is"
  phrase, then Math-Verify ``verify(parse(gold), parse(pred))`` — gold first, as its docs require.
  Math-Verify's own timeouts use signals and only work in a main thread, and SymPy can hang on
  adversarial LaTeX, so grading runs in a pool of worker processes with a wall-clock timeout per item;
  a stuck worker is killed and the item is graded ``timeout`` (incorrect). A worker imports and warms
  Math-Verify before the pool is used, so the timeout times grading alone: counting a fresh worker's
  start-up (seconds on a loaded machine) against the next item would turn one timeout into a cascade.
* Multiple choice (GPQA): strict letter extraction — a boxed letter, "Answer: X", "answer is (X)" — never
  a letter guessed from prose.
* Majority vote groups answers by their kind's equality: mathematical equivalence (the same grader) for math.
"""

from __future__ import annotations

import multiprocessing as mp
import re
from collections.abc import Sequence
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER = re.compile(
    r"(?:final\s+answer|answer)\s*(?:is|:|=)\s*(?:\$\s*)?(.+?)\s*(?:\$)?\s*(?:\.\s*)?$", re.IGNORECASE | re.MULTILINE
)


def last_boxed(text: str, start: int = 0) -> str | None:
    """Content of the last complete ``\\boxed{…}`` / ``\\fbox{…}`` (braces balanced; ``\\boxed 5`` too)
    whose content begins at or after ``start``; ``""`` for an empty box."""
    found = None
    for m in _BOX.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{" and text[j - 1] != "\\":
                    depth += 1
                elif text[j] == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        if i + 1 >= start:
                            found = text[i + 1 : j]
                        break
                j += 1
        else:
            token = re.match(r"[^\s$]+", text[i:])
            if token and i >= start:
                found = token.group(0)
    return found.strip() if found is not None else None


def extract_math(answer_text: str, start: int = 0) -> str | None:
    """The candidate answer of a math answer phase, or None. Only text from ``start`` on is the model's
    (before it: the cue prunescale appended on a forced end, e.g. ``Final Answer: \\boxed{``), so only a
    candidate that begins there counts. The last box decides; an empty box, or an unclosed one that only
    the "Answer:" phrase would reach, is no answer."""
    boxed = last_boxed(answer_text, start)
    if boxed is not None:
        return (_CHOICE_LABEL.sub("", boxed) or boxed) or None  # AMC style "\\textbf{(C)}\\ 12" → "12"
    found = None
    for m in _ANSWER.finditer(answer_text):
        if m.start(1) >= start:
            found = m.group(1).strip().rstrip(".").strip()
    if not found or _BOX.search(found):
        return None
    return found


_LETTER_PATTERNS = (
    re.compile(r"\\boxed\s*\{\s*\(?([A-Z])\)?\s*\}"),
    re.compile(r"answer\s*(?:is|:)\s*\(?\s*([A-Z])\s*\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-Z])\)?\s*[.)]?\s*$", re.MULTILINE),
)


def extract_letter(answer_text: str, n_choices: int = 4, start: int = 0) -> str | None:
    """Strict multiple-choice extraction: the last explicit letter among the first ``n_choices`` that the
    model wrote (at or after ``start``)."""
    allowed = {chr(ord("A") + i) for i in range(n_choices)}
    for pattern in _LETTER_PATTERNS:
        hits = [m.group(1).upper() for m in pattern.finditer(answer_text) if m.start(1) >= start]
        hits = [h for h in hits if h in allowed]
        if hits:
            return hits[-1]
    return None


_DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[")
_CHOICE_LABEL = re.compile(r"^\\text(?:bf)?\{\s*\(?[A-E]\)?\s*\}\s*(?:\\ |~|\\quad)?\s*")


def _wrap(expr: str) -> str:
    """Give Math-Verify a delimited expression (a literal ``\\$`` is a dollar sign, not a delimiter)."""
    return expr if _DELIMITED.search(expr) else f"${expr}$"


def math_equal_inline(pred: str, gold: str) -> tuple[bool, str]:
    """(equal, status) by Math-Verify in this process (no timeout: call through :class:`Grader`).

    Where Math-Verify finds no expression in one of them, they are compared as strings (status ``ok``:
    that is the rule). Where it raises (SymPy fails on odd input in many ways), the status is
    ``grader_error``, recorded in samples.jsonl and counted in the summary, and the answer counts as
    correct only if it is the gold string itself."""
    from math_verify import parse, verify  # heavy (SymPy): only in grading workers, never at CLI or help time

    try:
        gold_p, pred_p = parse(_wrap(gold)), parse(_wrap(pred))
        if not gold_p or not pred_p:
            return pred.strip() == gold.strip(), "ok"
        return bool(verify(gold_p, pred_p)), "ok"
    except Exception:
        return pred.strip() == gold.strip(), "grader_error"


def _worker_equal(pair: tuple[str, str]) -> tuple[bool, str]:
    return math_equal_inline(*pair)


def _worker_warm() -> None:
    """Pool initializer: import Math-Verify (and SymPy, its parser) and grade one pair."""
    math_equal_inline("1/2", r"\frac{1}{2}")


def _worker_ready() -> bool:
    return True


STARTUP_TIMEOUT = 600.0  # seconds a fresh pool may take to answer at all (imports on a loaded machine)


@dataclass
class Grade:
    correct: bool
    status: str  # ok | no_answer | timeout | grader_error


class Grader:
    """Math-Verify in worker processes with a wall-clock timeout per comparison."""

    def __init__(self, workers: int = 1, timeout: float = 5.0) -> None:
        self.workers, self.timeout = max(1, workers), timeout
        self._pool = None

    def _get_pool(self):
        """The worker pool, started and warm: one worker has answered before any item is timed (a task
        only ever goes to a worker whose initializer has finished)."""
        if self._pool is None:
            pool = mp.get_context("spawn").Pool(self.workers, initializer=_worker_warm)
            try:
                pool.apply_async(_worker_ready).get(STARTUP_TIMEOUT)
            except mp.TimeoutError:
                pool.terminate()
                pool.join()
                raise RuntimeError(f"grading workers did not start within {STARTUP_TIMEOUT:.0f} s") from None
            self._pool = pool
        return self._pool

    def _reset(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def equal_many(self, pairs: Sequence[tuple[str, str]]) -> list[Grade]:
        """Grade (pred, gold) pairs; a pair that exceeds the timeout is ``timeout`` and incorrect."""
        out: list[Grade | None] = [None] * len(pairs)
        pending = list(range(len(pairs)))
        while pending:
            pool = self._get_pool()
            jobs = [(i, pool.apply_async(_worker_equal, (pairs[i],))) for i in pending]
            pending = []
            for k, (i, job) in enumerate(jobs):
                try:
                    out[i] = Grade(*job.get(self.timeout))
                except mp.TimeoutError:
                    out[i] = Grade(False, "timeout")
                    self._reset()  # kill the stuck worker; re-run what had not finished
                    pending = [j for j, _ in jobs[k + 1 :]]
                    break
        return [g for g in out if g is not None]

    def close(self) -> None:
        self._reset()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
