"""The tiny reasoner's own measuring stick, on the one budget-forcing implementation.

Greedy decoding through :mod:`prunescale.tts.forcing` (the sweep ``prunescale eval`` runs, with its
literal boundary rule) and the hf engine, graded by the task's exact verifier. Used by
:mod:`prunescale.toy.behaviour`, by training's health check and by ``benchmarks/tiny_reasoner.py``, so
the numbers shipped in ``behaviour.json`` mean what an eval of the same budgets means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunescale.toy.tasks import Problem, verify
from prunescale.tts.benchmarks import Item
from prunescale.tts.engines.hf import HFEngine
from prunescale.tts.forcing import Markers, Policy, Trajectory, sweep
from prunescale.tts.prompting import FORMATS, prompt_ids


@dataclass
class Graded:
    problem: Problem
    budget: int
    think_tokens: int
    forced_end: bool
    answer: str
    correct: bool
    said_wait: bool  # the model wrote "Wait" itself in the thinking it kept


def solve(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    budgets: Sequence[int],
    wait_rounds: int = 0,
    answer_budget: int = 4,
    batch_size: int = 64,
) -> tuple[list[Trajectory], dict[int, list[Graded]]]:
    """Every budget for every problem from one greedy trajectory each (budgets sorted ascending)."""
    engine = HFEngine(model, tok.pad_token_id, batch_size)
    mk = Markers(tok, FORMATS["think"])
    items = [Item(f"p{i}", p.prompt, p.answer, "tiny") for i, p in enumerate(problems)]
    prompts = [prompt_ids(tok, it, FORMATS["think"]) for it in items]
    policy = Policy(sorted(budgets), wait_rounds=wait_rounds, answer_budget=answer_budget)
    trajs, results = sweep(engine, mk, prompts, [None] * len(items), ["\n\n"] * len(items), policy)
    wait_id = tok.convert_tokens_to_ids("Wait")
    graded: dict[int, list[Graded]] = {b: [] for b in policy.budgets}
    for p, t, per_budget in zip(problems, trajs, results):
        for r in per_budget:
            text = r.generated.strip()
            own = t.kept(r.budget)[: t.wait_at[0]] if t.wait_at else t.kept(r.budget)
            graded[r.budget].append(
                Graded(p, r.budget, r.think_tokens, r.forced_end, text, verify(p.prompt, text), wait_id in own)
            )
    return trajs, graded


def accuracy(graded: Sequence[Graded]) -> float:
    return sum(g.correct for g in graded) / max(1, len(graded))
