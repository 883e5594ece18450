"""Budget forcing as an explicit state machine, and the budget sweep by prefix reuse.

One thinking *trajectory* per (item, seed, sample) is generated up to the largest budget:

    THINK ──closer──▶ (rounds left or below min budget?) ──yes──▶ append "Wait", THINK again
      │                              └──no──▶ natural end
      └──budget exhausted──▶ forced end

Token accounting is cumulative over rounds (the inserted "Wait" counts). Because every round's samples
come from that request's own seeded generator (or greedy decoding), the thinking under a budget B is the
first B tokens of the trajectory under any larger budget; so each budget is derived by truncation and only
the short answer phase runs per budget (identical answer contexts are generated once; every request of a
trajectory carries its prefix key, so an engine that keeps the trajectory's KV cache prefills only the
closer and cue of each answer and the "Wait" of each round):

* natural end within B → the model's own closer, then its answer;
* otherwise → thinking cut at B, the closer plus an answer cue forced, then the answer. A model that ends
  its whole reply (EOS) inside the thinking block without a closer gets the same closer + cue, so it is
  asked for an answer rather than graded on its thinking; this is recorded as a natural, not forced, end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from prunescale.tts.engines.base import Engine, Request


@dataclass
class Policy:
    budgets: list[int]
    wait_rounds: int = 0  # force this many "Wait" extensions after natural ends
    min_budget: int = 0  # ...or extend until at least this many thinking tokens
    answer_budget: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    wait_text: str = "Wait"


@dataclass
class Trajectory:
    prompt_ids: list[int]
    think_ids: list[int] = field(default_factory=list)
    natural_end: int | None = None  # thinking length at the model's own final close
    waits: int = 0
    wait_at: list[int] = field(default_factory=list)
    hit_eos: bool = False  # the model ended its whole reply inside the thinking block (no closer)
    key: object = field(default_factory=object)  # prefix key: every request of this trajectory shares it

    def waits_within(self, budget: int) -> int:
        return sum(1 for p in self.wait_at if p < budget)


def round_seed(seed: int | None, round_index: int) -> int | None:
    return None if seed is None else (seed * 1_000_003 + round_index) % (2**63)


def think(
    engine: Engine,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    seeds: Sequence[int | None],
    policy: Policy,
    stop: int | tuple[int, ...],
) -> list[Trajectory]:
    """Generate each trajectory up to max(budgets), applying the Wait policy."""
    limit = max(policy.budgets)
    seq = (stop,) if isinstance(stop, int) else tuple(stop)
    stop_ids, stop_seqs = ((seq[0], tok.eos_token_id), ()) if len(seq) == 1 else ((tok.eos_token_id,), (seq,))
    wait_ids = tok(policy.wait_text, add_special_tokens=False).input_ids
    newline = tok("\n", add_special_tokens=False).input_ids
    trajs = [Trajectory(list(p)) for p in prompts]
    active = [i for i in range(len(trajs)) if limit > 0]
    rnd = 0
    while active:
        reqs = [Request(trajs[i].prompt_ids + trajs[i].think_ids, limit - len(trajs[i].think_ids), stop_ids,
                        round_seed(seeds[i], rnd), policy.temperature, policy.top_p, stop_seqs,
                        prefix_key=trajs[i].key, keep_prefix=True) for i in active]
        outs = engine.generate(reqs)
        nxt = []
        for i, out in zip(active, outs):
            t = trajs[i]
            t.think_ids += out.ids
            if not out.stopped:  # budget exhausted: forced end for every budget
                continue
            if out.stop_id == tok.eos_token_id and out.stop_sequence is None and seq != (tok.eos_token_id,):
                t.hit_eos = True
                t.natural_end = len(t.think_ids)
                continue
            extend = t.waits < policy.wait_rounds or len(t.think_ids) < policy.min_budget
            if extend and len(t.think_ids) < limit:
                ends_line = tok.decode(t.think_ids[-1:]).endswith("\n") if t.think_ids else True
                t.wait_at.append(len(t.think_ids))
                t.think_ids += ([] if ends_line else newline) + wait_ids + newline
                t.waits += 1
                if len(t.think_ids) < limit:
                    nxt.append(i)
            else:
                t.natural_end = len(t.think_ids)
        active = nxt
        rnd += 1
    return trajs


@dataclass
class BudgetResult:
    budget: int
    think_tokens: int
    forced_end: bool
    waits: int
    answer_ids: list[int]
    answer_text: str  # cue (if forced) + generated answer
    finish: str  # stop | length | no_answer


def answer_phase(
    engine: Engine,
    tok: PreTrainedTokenizerBase,
    trajs: Sequence[Trajectory],
    seeds: Sequence[int | None],
    cues: Sequence[str],
    closer: str,
    policy: Policy,
) -> list[list[BudgetResult]]:
    """For every trajectory and budget: the answer under that budget (deduplicated contexts)."""
    closer_ids = tok(closer, add_special_tokens=False).input_ids
    newline = tok("\n", add_special_tokens=False).input_ids
    contexts: dict[tuple, int] = {}
    reqs: list[Request] = []
    plan: list[list[tuple[int, int, bool, int, str]]] = []
    for t, seed, cue in zip(trajs, seeds, cues):
        row = []
        for b in policy.budgets:
            natural = t.natural_end is not None and t.natural_end <= b
            kept = t.think_ids[: t.natural_end] if natural else t.think_ids[:b]
            if natural and not t.hit_eos:
                ctx, prefix = t.prompt_ids + kept + closer_ids, ""
            else:
                lead = [] if (not kept or tok.decode(kept[-1:]).endswith("\n")) else newline
                cue_ids = tok(cue, add_special_tokens=False).input_ids
                ctx, prefix = t.prompt_ids + kept + lead + closer_ids + cue_ids, cue
            key = (tuple(ctx), seed)  # the same context under the same seed: one answer, shared by budgets
            if key not in contexts:
                contexts[key] = len(reqs)
                reqs.append(Request(ctx, policy.answer_budget, (tok.eos_token_id,), round_seed(seed, 10_000),
                                    policy.temperature, policy.top_p, prefix_key=t.key))
            row.append((contexts[key], len(kept), not natural, t.waits_within(b), prefix))
        plan.append(row)
    outs = engine.generate(reqs) if reqs else []
    release = getattr(engine, "release", None)  # engines that keep each trajectory's prefix may now drop it
    if release is not None:
        release([t.key for t in trajs])
    results = []
    for row in plan:
        res = []
        for b, (ri, n_think, forced, waits, prefix) in zip(policy.budgets, row):
            if ri < 0:
                res.append(BudgetResult(b, n_think, False, waits, [], "", "no_answer"))
                continue
            out = outs[ri]
            text = prefix + tok.decode(out.ids, skip_special_tokens=True)
            res.append(BudgetResult(b, n_think, forced, waits, out.ids, text, "stop" if out.stopped else "length"))
        results.append(res)
    return results
