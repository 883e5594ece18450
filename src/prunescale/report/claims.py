"""The reference study's three claims, judged on a study's own data.

arXiv 2604.25098 reports, without error bars: (a) removing layers collapses test-time scaling; (b)
unstructured pruning at ≤ 20 % keeps dense test-time scaling; (c) non-uniform allocation matters more
at high sparsity. Each is *held*, *not held* or *undecided* here by a rule stated in advance (and in
docs/METHODS.md), from paired comparisons on the same items with 95 % intervals
(:mod:`prunescale.stats.paired`); *not tested* when the study has no variants for it. Per benchmark.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from prunescale.stats.paired import paired

MARGIN = 0.05  # "keeps" and "does not matter" mean: within 5 accuracy points
LOW_SPARSITY = 0.2


@dataclass
class Claim:
    key: str
    statement: str
    benchmark: str
    verdict: str  # held | not held | undecided | not tested
    evidence: str


def _item_means(samples: list[dict], budget: int) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for r in samples:
        if r["budget"] == budget:
            acc[r["item_id"]].append(float(r["correct"]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def _gain(samples: list[dict], lo: int, hi: int) -> dict[str, float]:
    a, b = _item_means(samples, hi), _item_means(samples, lo)
    return {i: a[i] - b[i] for i in a if i in b}


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _dense(bench: str, pooled: list[dict], samples: dict) -> list[dict] | None:
    """The samples of the benchmark's dense variant (found by its kind, whatever its name)."""
    name = next((r["variant"] for r in pooled if r["benchmark"] == bench and r["kind"] == "dense"), None)
    return samples.get((name, bench)) if name is not None else None


def layer_removal_collapses(bench: str, pooled: list[dict], samples: dict, budgets: list[int]) -> Claim:
    """(a) Held when every layer-removal variant keeps less than half of dense's gain from the smallest to
    the largest budget with confidence (the paired interval of its gain minus dense's lies below −½ of
    dense's gain); not held when one demonstrably keeps more than half; undecided otherwise."""
    statement = "Removing layers collapses test-time scaling"
    structured = sorted({r["variant"] for r in pooled if r["benchmark"] == bench and r["kind"] == "structured"})
    dense = _dense(bench, pooled, samples)
    if not structured or dense is None or len(budgets) < 2:
        return Claim("a", statement, bench, "not tested", "needs dense, a layer-removal variant and two budgets")
    lo, hi = budgets[0], budgets[-1]
    g_dense = _gain(dense, lo, hi)
    dense_gain = sum(g_dense.values()) / max(1, len(g_dense))
    if dense_gain <= 0:
        return Claim("a", statement, bench, "undecided", f"dense itself does not gain from B={lo} to B={hi} "
                     f"({_pts(dense_gain)} points): nothing to collapse")
    parts, collapsed, kept = [], [], []
    for v in structured:
        d = paired(_gain(samples[(v, bench)], lo, hi), g_dense)
        parts.append(f"{v}: gain {_pts(dense_gain + d.delta)} vs dense {_pts(dense_gain)} "
                     f"(Δ {_pts(d.delta)} [{_pts(d.low)}, {_pts(d.high)}])")
        collapsed.append(d.high < -0.5 * dense_gain)
        kept.append(d.low > -0.5 * dense_gain)
    verdict = "held" if all(collapsed) else "not held" if any(kept) else "undecided"
    return Claim("a", statement, bench, verdict, f"points from B={lo} to B={hi}; " + "; ".join(parts))


def low_sparsity_keeps_tts(bench: str, pooled: list[dict]) -> Claim:
    """(b) Held when every unstructured variant at ≤ 20 % has, at every budget, a paired difference to
    dense whose interval lies above −5 points; not held when one lies wholly below −5 points at some
    budget; undecided otherwise."""
    statement = f"Unstructured pruning at ≤ {LOW_SPARSITY:.0%} keeps dense test-time scaling"
    rows = [r for r in pooled if r["benchmark"] == bench and r["kind"] == "unstructured"
            and 0 < r["target_sparsity"] <= LOW_SPARSITY + 1e-9 and r["delta_low"] == r["delta_low"]]
    if not rows:
        return Claim("b", statement, bench, "not tested", f"needs unstructured variants at ≤ {LOW_SPARSITY:.0%}")
    worst = min(rows, key=lambda r: r["delta_low"])
    kept = all(r["delta_low"] > -MARGIN for r in rows)
    broken = [r for r in rows if r["delta_high"] < -MARGIN]
    verdict = "held" if kept else "not held" if broken else "undecided"
    shown = broken[0] if broken else worst
    return Claim("b", statement, bench, verdict,
                 f"{len({r['variant'] for r in rows})} variant(s) × {len({r['budget'] for r in rows})} budgets; "
                 f"{'worst' if not broken else 'clearly worse'}: {shown['variant']} at B={shown['budget']}, "
                 f"Δ {_pts(shown['delta'])} [{_pts(shown['delta_low'])}, {_pts(shown['delta_high'])}] points "
                 f"(margin {100 * MARGIN:.0f})")


def allocation_matters_more_at_high_sparsity(bench: str, pooled: list[dict], samples: dict,
                                             budgets: list[int]) -> Claim:
    """(c) At the largest budget, each non-uniform allocation against uniform (same method and sparsity),
    paired on items. Held when at the highest sparsity some allocation differs beyond its interval and at
    the lowest none does; not held when at the highest sparsity every difference's interval lies within
    ±5 points; undecided otherwise."""
    statement = "Non-uniform allocation matters more at high sparsity"
    hi = budgets[-1] if budgets else None
    # method and sparsity (to the percent: a file allocation's audited mean may be 0.5 % off) → allocation →
    # its variants; N:M patterns are no allocation
    groups: dict[tuple[str, float], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in pooled:
        if (r["benchmark"] == bench and r["kind"] == "unstructured" and r["budget"] == hi
                and r["allocation"] not in ("", "n:m")):
            groups[(r["method"], round(r["target_sparsity"], 2))][r["allocation"].split(":")[0]].append(r["variant"])
    comparisons: dict[float, list[tuple[str, object]]] = defaultdict(list)
    for (method, sparsity), by_alloc in groups.items():
        for base_name in by_alloc.get("uniform", []):
            base = _item_means(samples[(base_name, bench)], hi)
            for alloc, names in by_alloc.items():
                for v in names if alloc != "uniform" else ():
                    label = f"{method} {alloc}" if len(names) == 1 else f"{v}"
                    comparisons[sparsity].append((label, paired(_item_means(samples[(v, bench)], hi), base)))
    levels = sorted(comparisons)
    if len(levels) < 2:
        return Claim("c", statement, bench, "not tested", "needs uniform and another allocation of one method at "
                     "two or more sparsities")
    low, high = levels[0], levels[-1]
    beyond = lambda d: d.low > 0 or d.high < 0  # noqa: E731
    def show(level: float) -> str:
        return ", ".join(f"{name} {_pts(d.delta)} [{_pts(d.low)}, {_pts(d.high)}]" for name, d in comparisons[level])
    evidence = (f"vs uniform at B={hi}, points: at {low:.0%}: {show(low)}; at {high:.0%}: {show(high)}")
    if any(beyond(d) for _, d in comparisons[high]) and not any(beyond(d) for _, d in comparisons[low]):
        verdict = "held"
    elif all(d.low > -MARGIN and d.high < MARGIN for _, d in comparisons[high]):
        verdict = "not held"
    else:
        verdict = "undecided"
    return Claim("c", statement, bench, verdict, evidence)


def judge(pooled: list[dict], samples: dict) -> list[Claim]:
    out = []
    for bench in dict.fromkeys(r["benchmark"] for r in pooled):
        budgets = sorted({r["budget"] for r in pooled if r["benchmark"] == bench})
        out += [layer_removal_collapses(bench, pooled, samples, budgets), low_sparsity_keeps_tts(bench, pooled),
                allocation_matters_more_at_high_sparsity(bench, pooled, samples, budgets)]
    return out
