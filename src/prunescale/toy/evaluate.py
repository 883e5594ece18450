"""Accuracy-vs-thinking-budget check of the tiny reasoner (greedy, budget forcing by truncation).

Greedy decoding is deterministic, so the first B thinking tokens are the same whether generation is
capped at B or a longer trace is cut at B. We therefore generate each trace once (up to ``max_think``)
and derive every budget by truncation, then run only the short answer phase per budget. A budget
``B`` gives the model ``min(B, natural length)`` thinking tokens; if it was cut, the closer is forced
(``\\n</think>\\n\\n``) and the model must answer from what it has.

This is the measuring stick of the embedded model; the general engine for real benchmarks
(sampling, Wait rounds, vLLM) builds on the same idea.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunescale.toy.tasks import Problem, verify
from prunescale.toy.tokenizer import EOS, THINK_CLOSE, render_prompt
from prunescale.tts.greedy import greedy_continue


@dataclass
class Trace:
    """One greedy thinking trace and the answers derived from it."""

    problem: Problem
    prompt_ids: list[int]
    think_ids: list[int]  # without the closer
    closed: bool  # the model closed its thinking by itself within max_think


@dataclass
class Graded:
    problem: Problem
    budget: int | None  # None = unlimited (the natural trace)
    think_tokens: int
    forced_end: bool
    answer: str
    correct: bool
    said_wait: bool


def think(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    max_think: int = 256,
    batch_size: int = 64,
) -> list[Trace]:
    """Generate each problem's greedy thinking trace once, up to ``max_think`` tokens."""
    close_id = tok.convert_tokens_to_ids(THINK_CLOSE)
    prompts = [tok(render_prompt(p.prompt), add_special_tokens=False).input_ids for p in problems]
    gens = greedy_continue(model, prompts, max_think, [close_id, tok.eos_token_id], tok.pad_token_id, batch_size)
    return [Trace(p, ids, new, stopped) for p, ids, (new, stopped) in zip(problems, prompts, gens)]


def _closer(tok: PreTrainedTokenizerBase, think_ids: list[int]) -> list[int]:
    text = tok.decode(think_ids[-1:]) if think_ids else "\n"
    lead = "" if text.endswith("\n") else "\n"
    return tok(f"{lead}{THINK_CLOSE}\n\n", add_special_tokens=False).input_ids


def answer(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    traces: Sequence[Trace],
    budget: int | None,
    answer_budget: int = 4,
    batch_size: int = 64,
) -> list[Graded]:
    """Answer phase under a thinking budget (None: the whole natural trace), graded exactly."""
    contexts, meta = [], []
    wait_id = tok.convert_tokens_to_ids("Wait")
    for tr in traces:
        kept = tr.think_ids if budget is None else tr.think_ids[:budget]
        forced = not tr.closed or (budget is not None and len(tr.think_ids) > budget)
        contexts.append(tr.prompt_ids + kept + _closer(tok, kept))
        meta.append((tr, kept, forced))
    gens = greedy_continue(model, contexts, answer_budget, [tok.eos_token_id], tok.pad_token_id, batch_size)
    graded = []
    for (tr, kept, forced), (new, _) in zip(meta, gens):
        text = tok.decode(new, skip_special_tokens=True).strip()
        graded.append(
            Graded(tr.problem, budget, len(kept), forced, text, verify(tr.problem.prompt, text), wait_id in kept)
        )
    return graded


def solve_full(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    max_think: int = 256,
    batch_size: int = 64,
) -> list[Graded]:
    """Unlimited (up to ``max_think``) thinking, then answer."""
    return answer(model, tok, think(model, tok, problems, max_think, batch_size), None, batch_size=batch_size)


def force_wait(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    traces: Sequence[Trace],
    extra: int = 64,
    batch_size: int = 64,
) -> list[Trace]:
    """s1-style extension: replace each natural closer by ``Wait`` and let the model think on.

    Traces that never closed are returned unchanged (there is no end to extend).
    """
    close_id = tok.convert_tokens_to_ids(THINK_CLOSE)
    wait = tok("Wait\n", add_special_tokens=False).input_ids
    todo = [i for i, tr in enumerate(traces) if tr.closed]
    ctx = []
    for i in todo:
        tr = traces[i]
        lead = [] if tok.decode(tr.think_ids[-1:]).endswith("\n") else tok("\n", add_special_tokens=False).input_ids
        ctx.append(tr.prompt_ids + tr.think_ids + lead + wait)
    gens = greedy_continue(model, ctx, extra, [close_id, tok.eos_token_id], tok.pad_token_id, batch_size)
    out = list(traces)
    for i, c, (new, stopped) in zip(todo, ctx, gens):
        tr = traces[i]
        out[i] = Trace(tr.problem, tr.prompt_ids, c[len(tr.prompt_ids) :] + new, stopped)
    return out


def accuracy(graded: Sequence[Graded]) -> float:
    return sum(g.correct for g in graded) / max(1, len(graded))


__all__ = ["EOS", "Graded", "Trace", "accuracy", "answer", "force_wait", "greedy_continue", "solve_full", "think"]
