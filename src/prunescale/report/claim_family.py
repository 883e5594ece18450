"""The machinery every claim of :mod:`prunescale.report.claims` shares: the claim record, its paired
comparisons, the family that adjusts every tested claim together (Bonferroni over K, intersection-union
within a claim), and the per-item helpers the rules are written in.

Kept apart from the rules so that a new claim is one rule function, never a second copy of the
adjustment: every claim's intervals come from one :meth:`Family.resolve`, whatever the claim.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prunescale.stats.paired import Difference, differences, paired_test

MARGIN = 0.05  # "keeps" / "retains" and "does not matter" mean: within 5 accuracy points
ALPHA = 0.05  # family-wise, over every verdict of the Claims section


@dataclass
class Claim:
    key: str
    statement: str
    benchmark: str
    verdict: str  # held | not held | undecided | not tested
    evidence: str
    level: float = 1 - ALPHA  # the level of the intervals its evidence shows
    tests: int = 0  # K: the claim × benchmark tests of the section, adjusted together


@dataclass
class Comparison:
    """One paired comparison within a claim: per-item differences in [−bound, bound], with its interval at
    the claim's level (``every``: statements about all of the claim's comparisons) and at the level
    adjusted over the claim's comparisons (``some``: statements about one of them)."""

    a: Mapping[str, float]
    b: Mapping[str, float]
    bound: float = 1.0
    every: Difference | None = None
    some: Difference | None = None


@dataclass
class ClaimTests:
    """The comparisons one claim × benchmark rests on."""

    members: list[Comparison] = field(default_factory=list)
    level_every: float = 1 - ALPHA
    level_some: float = 1 - ALPHA

    def add(self, a: Mapping[str, float], b: Mapping[str, float], bound: float = 1.0) -> Comparison:
        c = Comparison(a, b, bound)
        self.members.append(c)
        return c


@dataclass
class Family:
    """Every claim × benchmark test of the section: K of them, each at α/K (Bonferroni)."""

    claims: list[ClaimTests] = field(default_factory=list)

    def claim(self) -> ClaimTests:
        c = ClaimTests()
        self.claims.append(c)
        return c

    @property
    def tested(self) -> int:
        return sum(1 for c in self.claims if c.members)

    def resolve(self, alpha: float = ALPHA) -> None:
        k = max(1, self.tested)
        for claim in self.claims:
            claim.level_every = 1 - alpha / k
            claim.level_some = 1 - alpha / (k * max(1, len(claim.members)))
            for c in claim.members:
                d = differences(c.a, c.b)
                c.every = paired_test(d, claim.level_every, c.bound)
                c.some = paired_test(d, claim.level_some, c.bound)


Verdict = Callable[[], Claim]


def item_means(samples: list[dict], budget: int) -> dict[str, float]:
    """Item id → its accuracy at ``budget``, averaged over its seeds and samples (the item is the unit)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in samples:
        if r["budget"] == budget:
            acc[r["item_id"]].append(float(r["correct"]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def minus(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {i: a[i] - b[i] for i in a if i in b}


def mean(x: Mapping[str, float]) -> float:
    return sum(x.values()) / max(1, len(x))


def pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def ci(d: Difference) -> str:
    return f"[{pts(d.low)}, {pts(d.high)}]"


def at(level: float) -> str:
    return f"intervals at {100 * level:.2f} %"


def non_inferiority(key: str, statement: str, bench: str, claim: ClaimTests,
                    tests: Mapping[tuple[str, int], Comparison], what: str, note: str = "") -> Claim:
    """The one non-inferiority rule (claims (b) and (d)): held when every comparison's lower bound (at the
    claim's level, an intersection-union test) lies above −margin; not held when one is shown worse than
    −margin (its upper bound below it, adjusted over the claim's comparisons); undecided otherwise.
    ``tests`` maps (variant, budget) to its comparison; ``what`` says what was compared."""
    worse = [(k, c.some) for k, c in tests.items() if c.some.high < -MARGIN]
    kept = all(c.every.low > -MARGIN for c in tests.values())
    v = "held" if kept else "not held" if worse else "undecided"
    if worse:
        (name, b), d = worse[0]
        level, shown = claim.level_some, "shown worse"
    else:
        (name, b), d = min(((k, c.every) for k, c in tests.items()), key=lambda kd: kd[1].low)
        level, shown = claim.level_every, "lowest bound"
    return Claim(key, statement, bench, v,
                 f"{what}, {at(level)} (one-sided {(1 - level) / 2:.2g}); {shown}: {name} at B={b}, Δ "
                 f"{pts(d.delta)} {ci(d)} points against the margin −{100 * MARGIN:.0f}{note}", level)
