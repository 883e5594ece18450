"""Item kinds: what a benchmark item asks for, and how its answer is read and graded.

An :class:`~prunescale.tts.benchmarks.Item`'s ``kind`` names one registered :class:`Kind`: the user
message it is sent as, the cue a forced end appends, how the candidate answer is extracted from the
model's own text, and how it is checked (exactly, or by Math-Verify through the
:class:`~prunescale.tts.grading.Grader`). ``math`` and ``choice`` are defined here; other kinds register
themselves (the tiny reasoner's ``tiny`` kind from :mod:`prunescale.toy`), so the evaluator never
imports the model organism.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prunescale.errors import PrunescaleError
from prunescale.registry import Registry
from prunescale.tts.benchmarks import Item
from prunescale.tts.grading import Grader, extract_letter, extract_math

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct choice, e.g. 'Answer: B'."


@dataclass(frozen=True)
class Kind:
    name: str
    cue: str  # what a forced end appends after the closer: the start of an answer the grader can read
    message: Callable[[Item], str]  # the user message an item is sent as
    extract: Callable[[Item, str, int], str | None]  # (item, answer text, where the model's own text starts)
    check: Callable[[Item, str], bool] | None = None  # exact check of a candidate; None: Math-Verify vs the gold
    cue_wins: bool = False  # the kind's cue replaces a thinking format's own forced cue

    def grade(self, item: Item, text: str, start: int, grader: Grader) -> tuple[str | None, bool, str]:
        """(extracted answer, correct, status) of one answer phase; only text from ``start`` on is the
        model's (before it: the cue prunescale appended, which may open a box the model closes)."""
        extracted = self.extract(item, text, start)
        if extracted is None:
            return None, False, "no_answer"
        if self.check is not None:
            return extracted, self.check(item, extracted), "ok"
        g = grader.equal_many([(extracted, item.gold)])[0]
        return extracted, g.correct, g.status

    def same(self, a: str, b: str, grader: Grader) -> bool:
        """Whether two extracted answers are the same answer (majority vote)."""
        if a == b:
            return True
        return self.check is None and grader.equal_many([(a, b)])[0].correct


KINDS: Registry[Kind] = Registry("item kind")


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kind_of(item: Item) -> Kind:
    if item.kind not in KINDS:
        raise PrunescaleError(f"no item kind {item.kind!r} is registered (known: {', '.join(KINDS)})")
    return KINDS[item.kind]


def _choice_message(item: Item) -> str:
    options = "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(item.choices))
    return f"{item.question}\n\n{options}\n\n{CHOICE_INSTRUCTION}"


register(Kind("math", "\n\nFinal Answer: \\boxed{", lambda it: f"{it.question}\n\n{MATH_INSTRUCTION}",
              lambda it, text, start: extract_math(text, start)))
register(Kind("choice", "\n\nFinal Answer: ", _choice_message,
              lambda it, text, start: extract_letter(text, len(it.choices), start),
              check=lambda it, letter: letter == it.gold))
