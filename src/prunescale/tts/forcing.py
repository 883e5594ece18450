"""Budget forcing as an explicit state machine, and the budget sweep by prefix reuse.

One thinking *trajectory* per (item, seed, sample) is generated up to the largest budget:

    THINK ──stop──▶ (rounds left or below min budget?) ──yes──▶ insert "Wait", THINK again
      │                            └──no──▶ natural end
      └──budget exhausted──▶ forced end

**The boundary is literal budget forcing** (s1's harness, the reference study's): under budget B the
model generates at most B thinking tokens (``max_tokens = B``), and it has ended its thinking only if the
tokens that end it (the format's stop, or EOS) are among those B. A model that would close with token
B + 1 is cut at B and forced. A multi-token stop that straddles B leaves its first tokens in the thinking,
as a capped run would. Token accounting is cumulative over rounds (an inserted "Wait" counts).

**The sweep equals one literal run per budget.** Every round draws from its request's own seeded
generator (or greedy decoding), so the thinking under budget B is the first B tokens of the trajectory
generated under any larger budget. Each budget is therefore derived by truncation and only its answer
phase runs (identical answer contexts are generated once; the requests of a trajectory share its prefix
key, so an engine that keeps the trajectory's KV prefills only the closer and cue of each answer):

* natural end within B → the kept thinking, the format's closer, then the model's answer;
* otherwise → the thinking cut at B, a newline if it does not end a line, the closer and the item's
  answer cue, then the answer. A model that ends its whole reply (EOS) inside the thinking block gets the
  same closer + cue, so it is asked for an answer rather than graded on its thinking; that is recorded as
  a natural, not a forced, end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from prunescale.tts.engines.base import Completion, Engine, Request
from prunescale.tts.prompting import ThinkFormat


@dataclass
class Policy:
    budgets: list[int]
    wait_rounds: int = 0  # force this many "Wait" extensions after natural ends
    min_budget: int = 0  # ...or extend until at least this many thinking tokens
    answer_budget: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # 0: off
    wait_text: str = "Wait"

    def request(self, ids: list[int], max_new: int, stop_ids, seed, stop_sequences=(), **kw) -> Request:
        return Request(ids, max_new, tuple(stop_ids), seed, self.temperature, self.top_p, tuple(stop_sequences),
                       top_k=self.top_k, min_p=self.min_p, **kw)


class _LineEnds:
    """Memo of "does this token's text end a line?" (decides whether a newline goes before a closer or
    "Wait"); asked for every budget of every trajectory, so not decoded each time."""

    def __init__(self, tok: PreTrainedTokenizerBase) -> None:
        self.tok, self.memo = tok, {}

    def __call__(self, token: int) -> bool:
        if token not in self.memo:
            self.memo[token] = self.tok.decode([token]).endswith("\n")
        return self.memo[token]


def running_ids(tok: PreTrainedTokenizerBase, text: str) -> tuple[int, ...]:
    """The ids of ``text`` as the tokenizer writes it inside running text (after a newline), which is how a
    model generates a stop. A SentencePiece tokenizer that prepends "▁" to a string's start (Llama 2,
    Mistral) would otherwise give a plain-text marker a leading "▁" token the model never writes there,
    and the stop would never match. Markers that are tokens of their own come out unchanged."""
    anchor = tok("\n", add_special_tokens=False).input_ids
    full = tok("\n" + text, add_special_tokens=False).input_ids
    if anchor and full[: len(anchor)] == anchor and len(full) > len(anchor):
        return tuple(full[len(anchor) :])
    return tuple(tok(text, add_special_tokens=False).input_ids)


def eos_ids(generation_config) -> tuple[int, ...]:
    """Every id that ends a reply by the model's generation config (Qwen lists ``<|im_end|>`` and
    ``<|endoftext|>``); the tokenizer's own EOS is added by the evaluator."""
    ids = getattr(generation_config, "eos_token_id", None)
    if ids is None:
        return ()
    return tuple(ids) if isinstance(ids, (list, tuple)) else (int(ids),)


class Markers:
    """A format's texts as token ids of one tokenizer, and the ids that end a reply (every EOS id of the
    model's generation config, e.g. Qwen's ``<|im_end|>`` and ``<|endoftext|>``)."""

    def __init__(self, tok: PreTrainedTokenizerBase, fmt: ThinkFormat, eos: Sequence[int] = (),
                 wait_text: str = "Wait") -> None:
        ids = lambda text: tuple(tok(text, add_special_tokens=False).input_ids)  # noqa: E731
        self.tok, self.fmt = tok, fmt
        self.stop, self.closer = running_ids(tok, fmt.stop), list(ids(fmt.closer))
        self.eos = tuple(dict.fromkeys([*eos, tok.eos_token_id] if tok.eos_token_id is not None else eos))
        self.wait, self.newline = list(ids(wait_text)), list(ids("\n"))
        self.ends_line = _LineEnds(tok)
        self._cues: dict[str, list[int]] = {}

    def thinking_stops(self) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """(stop ids, stop sequences) of a thinking request: a one-token stop is a stop id."""
        if len(self.stop) == 1:
            return (*self.stop, *self.eos), ()
        return self.eos, (self.stop,)

    def cue_ids(self, cue: str) -> list[int]:
        if cue not in self._cues:
            self._cues[cue] = self.tok(cue, add_special_tokens=False).input_ids
        return self._cues[cue]

    def lead(self, context: list[int]) -> list[int]:
        """A newline before a closer or "Wait" unless the context already ends a line."""
        return [] if (context and self.ends_line(context[-1])) else self.newline


@dataclass
class Trajectory:
    prompt_ids: list[int]
    think_ids: list[int] = field(default_factory=list)
    natural_end: int | None = None  # thinking length at the model's own final close
    closes: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (thinking length, stop tokens)
    wait_at: list[int] = field(default_factory=list)  # thinking length at each close replaced by "Wait"
    wait_end: list[int] = field(default_factory=list)  # thinking length where each inserted "Wait" ends
    waits: int = 0
    hit_eos: bool = False  # the model ended its whole reply inside the thinking block (no closer)
    rounds: int = 0  # thinking rounds generated (each draws from its own round seed)
    key: object = field(default_factory=object)  # prefix key: every request of this trajectory shares it

    def _first_unseen(self, budget: int) -> tuple[int, tuple[int, ...]] | None:
        """The first close a literal run under ``budget`` does not see (its last token is past B)."""
        return next(((p, s) for p, s in self.closes if p + len(s) > budget), None)

    def natural_within(self, budget: int) -> bool:
        return self.natural_end is not None and self._first_unseen(budget) is None

    def waits_within(self, budget: int) -> int:
        """Wait rounds whose "Wait" a literal run under ``budget`` keeps whole (one the cap cuts off is not
        a round the model saw)."""
        unseen = self._first_unseen(budget)
        if self.natural_within(budget):
            span = self.natural_end
        elif unseen is not None and unseen[0] < budget:  # cut inside a stop: its head is not thinking
            span = unseen[0]
        else:
            span = budget
        return sum(1 for end in self.wait_end if end <= span)

    def kept(self, budget: int) -> list[int]:
        """The thinking a literal run under ``budget`` keeps."""
        if self.natural_within(budget):
            return self.think_ids[: self.natural_end]
        unseen = self._first_unseen(budget)
        if unseen is not None and unseen[0] < budget:  # cut inside a multi-token stop: its head stays
            p, stop = unseen
            return self.think_ids[:p] + list(stop[: budget - p])
        return self.think_ids[:budget]


def round_seed(seed: int | None, round_index: int) -> int | None:
    return None if seed is None else (seed * 1_000_003 + round_index) % (2**63)


OnDone = Callable[[int, Completion], Sequence[Request]]


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

    def __init__(self, mk: Markers, policy: Policy) -> None:
        self.mk, self.policy, self.limit = mk, policy, max(policy.budgets)
        self.stop_ids, self.stop_seqs = mk.thinking_stops()

    def request(self, t: Trajectory, seed: int | None) -> Request:
        return self.policy.request(t.prompt_ids + t.think_ids, self.limit - len(t.think_ids), self.stop_ids,
                                   round_seed(seed, t.rounds), self.stop_seqs, prefix_key=t.key, keep_prefix=True)

    def advance(self, t: Trajectory, out: Completion) -> bool:
        """Apply one round's output; True if the trajectory thinks on (a "Wait" round)."""
        mk, p = self.mk, self.policy
        t.think_ids += out.ids
        t.rounds += 1
        if not out.stopped:  # budget exhausted: forced end for every budget
            return False
        stop = out.stop_sequence if out.stop_sequence is not None else (out.stop_id,)
        t.closes.append((len(t.think_ids), tuple(stop)))
        if out.stop_sequence is None and out.stop_id in mk.eos and out.stop_id not in mk.stop:
            t.hit_eos = True
            t.natural_end = len(t.think_ids)
            return False
        extend = t.waits < p.wait_rounds or len(t.think_ids) < p.min_budget
        if extend and len(t.think_ids) < self.limit:
            t.wait_at.append(len(t.think_ids))
            lead = [] if mk.fmt.wait_inline else mk.lead(t.prompt_ids + t.think_ids)
            t.wait_end.append(len(t.think_ids) + len(lead) + len(mk.wait))
            t.think_ids += lead + mk.wait + ([] if mk.fmt.wait_inline else mk.newline)
            t.waits += 1
            return len(t.think_ids) < self.limit  # else the budget ran out during the extension: forced
        t.natural_end = len(t.think_ids)
        return False


def think(
    engine: Engine,
    mk: Markers,
    prompts: Sequence[list[int]],
    seeds: Sequence[int | None],
    policy: Policy,
) -> list[Trajectory]:
    """Generate each trajectory up to max(budgets), applying the Wait policy. A trajectory's next round
    is requested the moment its previous one ends (an engine that takes follow-ups adds it to the
    running batch; others run rounds in waves)."""
    th = _Thinker(mk, policy)
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
    answer_ids: list[int]  # generated by the model
    cue: str  # appended by prunescale before the answer (forced ends and EOS inside thinking), never graded
    generated: str  # the model's answer text: the only text the grader reads
    finish: str  # stop | length

    @property
    def answer_text(self) -> str:
        return self.cue + self.generated


class _Answers:
    """Every budget's answer context of the trajectories, deduplicated: the same context under the same
    seed is one request, shared by budgets (and by trajectories)."""

    def __init__(self, mk: Markers, policy: Policy) -> None:
        self.mk, self.policy = mk, policy
        self.contexts: dict[tuple, int] = {}
        self.reqs: list[Request] = []
        self.plan: list[list[tuple[int, int, bool, int, str]]] = []  # per trajectory and budget

    def add(self, t: Trajectory, seed: int | None, cue: str) -> None:
        """Plan a trajectory's answers: one request per distinct context, side by side under the
        trajectory's prefix key."""
        mk, p = self.mk, self.policy
        row = []
        for b in p.budgets:
            natural = t.natural_within(b)
            kept = t.kept(b)
            if natural and not t.hit_eos:
                ctx, prefix = t.prompt_ids + kept + mk.closer, ""
            else:
                head = t.prompt_ids + kept
                ctx, prefix = head + mk.lead(head) + mk.closer + mk.cue_ids(cue), cue
            key = (tuple(ctx), seed)
            if key not in self.contexts:
                self.contexts[key] = len(self.reqs)
                self.reqs.append(p.request(ctx, p.answer_budget, mk.eos, round_seed(seed, 10_000), prefix_key=t.key))
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
                    decoded[ri] = self.mk.tok.decode(out.ids, skip_special_tokens=True)
                res.append(BudgetResult(b, n_think, forced, waits, out.ids, prefix, decoded[ri],
                                        "stop" if out.stopped else "length"))
            results.append(res)
        return results


def _release(engine: Engine, trajs: Sequence[Trajectory]) -> None:
    release = getattr(engine, "release", None)  # engines that keep each trajectory's prefix may now drop it
    if release is not None:
        release([t.key for t in trajs])


def answer_phase(
    engine: Engine,
    mk: Markers,
    trajs: Sequence[Trajectory],
    seeds: Sequence[int | None],
    cues: Sequence[str],
    policy: Policy,
) -> list[list[BudgetResult]]:
    """For every trajectory and budget: the answer under that budget (deduplicated contexts)."""
    ans = _Answers(mk, policy)
    for t, seed, cue in zip(trajs, seeds, cues):
        ans.add(t, seed, cue)
    outs = engine.generate(ans.reqs) if ans.reqs else []
    _release(engine, trajs)
    return ans.results(outs)


def sweep(
    engine: Engine,
    mk: Markers,
    prompts: Sequence[list[int]],
    seeds: Sequence[int | None],
    cues: Sequence[str],
    policy: Policy,
) -> tuple[list[Trajectory], list[list[BudgetResult]]]:
    """Every budget of every prompt: :func:`think` once up to the largest budget, then
    :func:`answer_phase`, where each trajectory's budgets are submitted side by side under its prefix
    key (the hf engine decodes them as branches of one row over the kept thinking). Called with one
    budget it *is* literal budget forcing (one capped generation), which is what the tests compare the
    sweep against."""
    trajs = think(engine, mk, prompts, seeds, policy)
    return trajs, answer_phase(engine, mk, trajs, seeds, cues, policy)
