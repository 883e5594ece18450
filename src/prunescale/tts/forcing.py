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

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from prunescale.tts.engines.base import Completion, Engine, Request


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
    rounds: int = 0  # thinking rounds generated (each draws from its own round seed)
    key: object = field(default_factory=object)  # prefix key: every request of this trajectory shares it

    def waits_within(self, budget: int) -> int:
        return sum(1 for p in self.wait_at if p < budget)


def round_seed(seed: int | None, round_index: int) -> int | None:
    return None if seed is None else (seed * 1_000_003 + round_index) % (2**63)


OnDone = Callable[[int, Completion], Sequence[Request]]


class _LineEnds:
    """Memo of "does this token's text end a line?" (decides whether a newline goes before a cue or
    "Wait"); asked for every budget of every trajectory, so not decoded each time."""

    def __init__(self, tok: PreTrainedTokenizerBase) -> None:
        self.tok, self.memo = tok, {}

    def __call__(self, token: int) -> bool:
        if token not in self.memo:
            self.memo[token] = self.tok.decode([token]).endswith("\n")
        return self.memo[token]


def generate_with_followups(engine: Engine, requests: Sequence[Request], on_done: OnDone) -> list[Completion]:
    """Run ``requests``; ``on_done(index, completion)`` may return follow-up requests, which get the next
    indices in the order returned. Engines whose ``generate`` takes ``on_done`` schedule follow-ups into
    the running batch at once; others run them in waves."""
    if "on_done" in inspect.signature(engine.generate).parameters:
        return engine.generate(requests, on_done=on_done)  # type: ignore[call-arg]
    outs: list[Completion] = []
    wave = list(requests)
    while wave:
        done = engine.generate(wave)
        base, nxt = len(outs), []
        outs += done
        for j, out in enumerate(done):
            nxt += on_done(base + j, out)
        wave = nxt
    return outs


class _Thinker:
    """The thinking state machine for one policy: a trajectory's next request, and what a finished
    round does to it."""

    def __init__(self, tok: PreTrainedTokenizerBase, policy: Policy, stop: int | tuple[int, ...]) -> None:
        self.tok, self.policy, self.limit = tok, policy, max(policy.budgets)
        self.seq = (stop,) if isinstance(stop, int) else tuple(stop)
        if len(self.seq) == 1:
            self.stop_ids, self.stop_seqs = (self.seq[0], tok.eos_token_id), ()
        else:
            self.stop_ids, self.stop_seqs = (tok.eos_token_id,), (self.seq,)
        self.wait_ids = tok(policy.wait_text, add_special_tokens=False).input_ids
        self.newline = tok("\n", add_special_tokens=False).input_ids
        self.ends_line = _LineEnds(tok)

    def request(self, t: Trajectory, seed: int | None) -> Request:
        p = self.policy
        return Request(t.prompt_ids + t.think_ids, self.limit - len(t.think_ids), self.stop_ids,
                       round_seed(seed, t.rounds), p.temperature, p.top_p, self.stop_seqs,
                       prefix_key=t.key, keep_prefix=True)

    def advance(self, t: Trajectory, out: Completion) -> bool:
        """Apply one round's output; True if the trajectory thinks on (a "Wait" round)."""
        tok, p = self.tok, self.policy
        t.think_ids += out.ids
        t.rounds += 1
        if not out.stopped:  # budget exhausted: forced end for every budget
            return False
        if out.stop_id == tok.eos_token_id and out.stop_sequence is None and self.seq != (tok.eos_token_id,):
            t.hit_eos = True
            t.natural_end = len(t.think_ids)
            return False
        extend = t.waits < p.wait_rounds or len(t.think_ids) < p.min_budget
        if extend and len(t.think_ids) < self.limit:
            ends_line = self.ends_line(t.think_ids[-1]) if t.think_ids else True
            t.wait_at.append(len(t.think_ids))
            t.think_ids += ([] if ends_line else self.newline) + self.wait_ids + self.newline
            t.waits += 1
            return len(t.think_ids) < self.limit  # else the budget ran out during the extension: forced
        t.natural_end = len(t.think_ids)
        return False


def think(
    engine: Engine,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    seeds: Sequence[int | None],
    policy: Policy,
    stop: int | tuple[int, ...],
) -> list[Trajectory]:
    """Generate each trajectory up to max(budgets), applying the Wait policy. A trajectory's next round
    is requested the moment its previous one ends (an engine that takes follow-ups adds it to the
    running batch; others run rounds in waves)."""
    th = _Thinker(tok, policy, stop)
    trajs = [Trajectory(list(p)) for p in prompts]
    owner = list(range(len(trajs))) if th.limit > 0 else []  # per submitted request: its trajectory

    def on_done(index: int, out: Completion) -> list[Request]:
        k = owner[index]
        if th.advance(trajs[k], out):
            owner.append(k)
            return [th.request(trajs[k], seeds[k])]
        return []

    if owner:
        generate_with_followups(engine, [th.request(trajs[i], seeds[i]) for i in owner], on_done)
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


class _Answers:
    """Every budget's answer context of the trajectories, deduplicated: the same context under the same
    seed is one request, shared by budgets (and by trajectories)."""

    def __init__(self, tok: PreTrainedTokenizerBase, closer: str, policy: Policy) -> None:
        self.tok, self.policy = tok, policy
        self.closer_ids = tok(closer, add_special_tokens=False).input_ids
        self.newline = tok("\n", add_special_tokens=False).input_ids
        self.ends_line = _LineEnds(tok)
        self.cue_ids: dict[str, list[int]] = {}
        self.contexts: dict[tuple, int] = {}
        self.reqs: list[Request] = []
        self.plan: list[list[tuple[int, int, bool, int, str]]] = []  # per trajectory and budget

    def add(self, t: Trajectory, seed: int | None, cue: str) -> None:
        """Plan the next trajectory's answers: one request per distinct context, side by side under the
        trajectory's prefix key."""
        tok, p = self.tok, self.policy
        row = []
        for b in p.budgets:
            natural = t.natural_end is not None and t.natural_end <= b
            kept = t.think_ids[: t.natural_end] if natural else t.think_ids[:b]
            if natural and not t.hit_eos:
                ctx, prefix = t.prompt_ids + kept + self.closer_ids, ""
            else:
                lead = [] if (not kept or self.ends_line(kept[-1])) else self.newline
                if cue not in self.cue_ids:
                    self.cue_ids[cue] = tok(cue, add_special_tokens=False).input_ids
                ctx, prefix = t.prompt_ids + kept + lead + self.closer_ids + self.cue_ids[cue], cue
            key = (tuple(ctx), seed)
            if key not in self.contexts:
                self.contexts[key] = len(self.reqs)
                self.reqs.append(Request(ctx, p.answer_budget, (tok.eos_token_id,), round_seed(seed, 10_000),
                                         p.temperature, p.top_p, prefix_key=t.key))
            row.append((self.contexts[key], len(kept), not natural, t.waits_within(b), prefix))
        self.plan.append(row)

    def results(self, outs: Sequence[Completion]) -> list[list[BudgetResult]]:
        """Per trajectory and budget; ``outs[k]`` answers ``self.reqs[k]``."""
        results, decoded = [], {}  # a request shared by budgets is decoded once
        for row in self.plan:
            res = []
            for b, (ri, n_think, forced, waits, prefix) in zip(self.policy.budgets, row):
                out = outs[ri]
                if ri not in decoded:
                    decoded[ri] = self.tok.decode(out.ids, skip_special_tokens=True)
                res.append(BudgetResult(b, n_think, forced, waits, out.ids, prefix + decoded[ri],
                                        "stop" if out.stopped else "length"))
            results.append(res)
        return results


def _release(engine: Engine, trajs: Sequence[Trajectory]) -> None:
    release = getattr(engine, "release", None)  # engines that keep each trajectory's prefix may now drop it
    if release is not None:
        release([t.key for t in trajs])


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
    ans = _Answers(tok, closer, policy)
    for t, seed, cue in zip(trajs, seeds, cues):
        ans.add(t, seed, cue)
    outs = engine.generate(ans.reqs) if ans.reqs else []
    _release(engine, trajs)
    return ans.results(outs)


def sweep(
    engine: Engine,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    seeds: Sequence[int | None],
    cues: Sequence[str],
    closer: str,
    policy: Policy,
    stop: int | tuple[int, ...],
) -> tuple[list[Trajectory], list[list[BudgetResult]]]:
    """Every budget of every prompt: :func:`think` once up to the largest budget, then
    :func:`answer_phase`, where each trajectory's budgets are submitted side by side under its prefix
    key (the hf engine decodes them as branches of one row over the kept thinking)."""
    trajs = think(engine, tok, prompts, seeds, policy, stop)
    return trajs, answer_phase(engine, tok, trajs, seeds, cues, closer, policy)
