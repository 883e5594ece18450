"""Procedural multi-step problems for the embedded tiny reasoner.

Two task families, each needing ``k`` strictly sequential steps, so a model can only be right at
large ``k`` if it spends thinking tokens (one line per step):

* ``arith`` — a digit walked through ``k`` labelled operations mod 10::

      prompt   x=3;a-5;b+4;c*7            thinking  a-5=8 / b+4=2 / c*7=4       answer 4

  Multipliers are restricted to {3, 7, 9} (units mod 10) so every answer digit is equally likely;
  a guess without thinking is then close to 10 % chance rather than exploiting a skewed prior.
* ``ptr`` — pointer chasing on a random permutation of the nodes ``a..j``, edges listed in node order::

      prompt   a>f,b>b,c>h,...;a;4         thinking  1a>f / 2f>i / 3i>d / 4d>g   answer g

  Listing the edges in node order makes each lookup positional (like the arith op lookup): a 6-layer
  model trained for 3000 steps on shuffled edge lists learned arith perfectly but stayed at chance on
  ptr (the content-based lookup needs an induction-head phase change it had not reached).

Splits are disjoint twice over: each split draws from its own seeded stream *and* only keeps problems
whose prompt hash falls in the split's bucket, so no prompt can appear in two splits even when the
problem space is small (arith with k=2 has only a few thousand prompts). The ``hard`` split uses more
steps than training ever shows (k = 13..16), so the dense model has headroom below 100 %.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

KINDS = ("arith", "ptr")
LABELS = "abcdefghijklmnop"  # one label per arith step; 16 covers the hard split
NODES = "abcdefghij"
MULTIPLIERS = (3, 7, 9)
TRAIN_K = (2, 12)
HARD_K = (13, 16)

# Hash buckets (of 100) per split. Train gets most; validation and test are disjoint slices.
_BUCKETS: dict[str, range] = {
    "train": range(0, 90),
    "validation": range(90, 95),
    "test": range(95, 100),
    "hard": range(95, 100),
}
_SPLIT_SALT = {"train": 1, "validation": 2, "test": 3, "hard": 4}
SPLITS = tuple(_BUCKETS)


@dataclass(frozen=True)
class Problem:
    """One problem: prompt, the gold thinking lines, the gold answer."""

    kind: str
    k: int
    prompt: str
    steps: tuple[str, ...]
    answer: str
    uid: str = field(default="")

    def trace(self) -> str:
        """The gold thinking text: one step per line, newline-terminated."""
        return "".join(line + "\n" for line in self.steps)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


def bucket(prompt: str) -> int:
    return int(prompt_hash(prompt), 16) % 100


def _arith(rng: random.Random, k: int) -> Problem:
    x = start = rng.randrange(10)
    ops, steps = [], []
    for i in range(k):
        op = rng.choice("+-*")
        d = rng.choice(MULTIPLIERS) if op == "*" else rng.randrange(1, 10)
        x = {"+": x + d, "-": x - d, "*": x * d}[op] % 10
        ops.append(f"{LABELS[i]}{op}{d}")
        steps.append(f"{LABELS[i]}{op}{d}={x}")
    prompt = f"x={start};" + ";".join(ops)
    return Problem("arith", k, prompt, tuple(steps), str(x))


def _ptr(rng: random.Random, k: int) -> Problem:
    targets = list(NODES)
    rng.shuffle(targets)
    edges = dict(zip(NODES, targets))
    start = rng.choice(NODES)
    node, steps = start, []
    for i in range(1, k + 1):
        nxt = edges[node]
        steps.append(f"{i}{node}>{nxt}")
        node = nxt
    prompt = ",".join(f"{a}>{edges[a]}" for a in NODES) + f";{start};{k}"  # edges listed in node order
    return Problem("ptr", k, prompt, tuple(steps), node)




def _ptr_shuffled(rng: random.Random, k: int) -> Problem:
    """The harder ptr variant with the edge list shuffled (content-based lookup); used by training stage 1."""
    targets = list(NODES)
    rng.shuffle(targets)
    edges = dict(zip(NODES, targets))
    order = list(NODES)
    rng.shuffle(order)
    start = rng.choice(NODES)
    node, steps = start, []
    for i in range(1, k + 1):
        steps.append(f"{i}{node}>{edges[node]}")
        node = edges[node]
    prompt = ",".join(f"{a}>{edges[a]}" for a in order) + f";{start};{k}"
    return Problem("ptr_shuffled", k, prompt, tuple(steps), node)


_MAKERS = {"arith": _arith, "ptr": _ptr, "ptr_shuffled": _ptr_shuffled}


def make_problem(rng: random.Random, kind: str, k: int) -> Problem:
    """Draw one problem of a given kind and step count (no split filtering)."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")
    if not 1 <= k <= len(LABELS):
        raise ValueError(f"k must be in 1..{len(LABELS)}, got {k}")
    p = _MAKERS[kind](rng, k)
    return Problem(p.kind, p.k, p.prompt, p.steps, p.answer, prompt_hash(p.prompt))


def iter_problems(
    split: str,
    seed: int = 0,
    k_range: tuple[int, int] | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> Iterator[Problem]:
    """Endless stream of problems of one split, alternating kinds, k uniform in ``k_range``."""
    if split not in _BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    lo, hi = k_range or (HARD_K if split == "hard" else TRAIN_K)
    rng = random.Random(f"prunescale-toy/{split}/{seed}/{_SPLIT_SALT[split]}")
    allowed = _BUCKETS[split]
    i = 0
    while True:
        kind = kinds[i % len(kinds)]
        p = make_problem(rng, kind, rng.randint(lo, hi))
        if bucket(p.prompt) in allowed:
            i += 1
            yield p


def sample_problems(
    split: str,
    n: int,
    seed: int = 0,
    k_range: tuple[int, int] | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[Problem]:
    """``n`` distinct problems of one split (deduplicated by prompt), deterministic in ``seed``."""
    out: list[Problem] = []
    seen: set[str] = set()
    for p in iter_problems(split, seed, k_range, kinds):
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
            if len(out) == n:
                return out
    raise AssertionError("unreachable")  # pragma: no cover


def solve(prompt: str) -> str:
    """Exact solver: the gold answer of any well-formed prompt (used by the verifier)."""
    parts = prompt.split(";")
    if prompt.startswith("x="):
        x = int(parts[0][2:])
        for op in parts[1:]:
            sym, d = op[1], int(op[2:])
            x = {"+": x + d, "-": x - d, "*": x * d}[sym] % 10
        return str(x)
    edges = dict(e.split(">") for e in parts[0].split(","))
    node, k = parts[1], int(parts[2])
    for _ in range(k):
        node = edges[node]
    return node


def verify(prompt: str, answer: str) -> bool:
    """True iff ``answer`` (whitespace-stripped) is the exact answer of ``prompt``."""
    try:
        return answer.strip() == solve(prompt)
    except (KeyError, ValueError, IndexError):
        return False
