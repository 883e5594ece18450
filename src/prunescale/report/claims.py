"""The reference study's claims, each tested as the claim it is, on a study's own data.

arXiv 2604.25098 reports, without error bars: (a) removing layers collapses test-time scaling; (b)
unstructured pruning at ≤ 20 % keeps dense test-time scaling (v1: "can improve"; v2, May 2026: "can
retain"); (c) non-uniform allocation matters more at high sparsity. Here (a) tests each layer-removal
variant's gain from the smallest to the largest budget against half of dense's gain on the same items,
(b) is a non-inferiority test against dense with a stated margin, and (c) an interaction: how much larger
the allocation's effect is at the highest sparsity than at the lowest, on the same items, with its own
interval (never "significant here, not there"). This project adds (d): quantization on top of pruning keeps
test-time scaling, each quantized variant against its unquantized counterpart by (b)'s non-inferiority
rule; (a)–(c) read only unquantized variants, so adding quantized ones never moves their verdicts (it
moves K when (d) is tested). Every interval comes from
:func:`prunescale.stats.paired.paired_test` on per-item differences. The verdicts are adjusted together:
each tested claim × benchmark is one of K tests at α/K (Bonferroni), so all verdicts hold jointly at
1 − α. Within a claim, a statement about *every* comparison (every layer-removal variant collapses, every
low-sparsity variant is non-inferior, every interaction is negligible) is an intersection-union test:
each interval at 1 − α/K, no further adjustment (Berger 1982); a statement about *some* comparison (one
variant keeps its scaling, one is worse, one allocation's interaction is shown) adjusts over the claim's m
comparisons, each at 1 − α/(K·m). Each claim is *held*, *not held* or *undecided* by a rule stated in
advance (docs/METHODS.md), or *not tested* when the study has no variants for it. Per benchmark. The
shared machinery (the family, the non-inferiority rule) is in :mod:`prunescale.report.claim_family`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from prunescale.report.claim_family import (
    ALPHA,
    MARGIN,
    Claim,
    Comparison,
    Family,
    Verdict,
    at,
    ci,
    item_means,
    mean,
    minus,
    non_inferiority,
    pts,
)

LOW_SPARSITY = 0.2
__all__ = ["ALPHA", "MARGIN", "LOW_SPARSITY", "Claim", "judge"]


def _unquantized(row: dict) -> bool:
    """Claims (a)–(c) are about pruning: a quantized variant (``quantize`` other than ``none``) would add a
    second change beside the one each claim names, so only (d) reads them."""
    return row.get("quantize", "none") in ("none", "")


def _variants(bench: str, pooled: list[dict]) -> dict[str, dict]:
    """Each variant of the benchmark once: kind, method, allocation, target sparsity, regime, quantization."""
    out: dict[str, dict] = {}
    for r in pooled:
        if r["benchmark"] == bench:
            out.setdefault(r["variant"], r)
    return out


def _dense(variants: dict[str, dict]) -> str | None:
    """The benchmark's dense variant (found by its kind, whatever its name)."""
    return next((name for name, r in variants.items() if r["kind"] == "dense"), None)


def _gain(samples: list[dict], lo: int, hi: int) -> dict[str, float]:
    return minus(item_means(samples, hi), item_means(samples, lo))


def layer_removal_collapses(bench: str, variants: dict[str, dict], samples: dict, budgets: list[int],
                            family: Family) -> Verdict:
    """(a) "Collapses" = keeps less than half of dense's gain from the smallest to the largest budget. Per
    item, c_i = G_variant,i − ½·G_dense,i (G the item's gain; dense's gain is estimated on the same items,
    so its error is in the test, not treated as known): held when every variant's interval of c lies
    below 0 (at the claim's level); not held when one lies above 0 (adjusted over the variants); undecided
    otherwise."""
    statement = "Removing layers collapses test-time scaling"
    structured = sorted(n for n, r in variants.items() if r["kind"] == "structured")
    dense = _dense(variants)
    if not structured or dense is None or len(budgets) < 2:
        return lambda: Claim("a", statement, bench, "not tested",
                             "needs dense, a layer-removal variant and two budgets")
    lo, hi = budgets[0], budgets[-1]
    g_dense = _gain(samples[(dense, bench)], lo, hi)
    dense_gain = mean(g_dense)
    if dense_gain <= 0:
        return lambda: Claim("a", statement, bench, "undecided", f"dense itself does not gain from B={lo} to "
                             f"B={hi} ({pts(dense_gain)} points): nothing to collapse")
    claim = family.claim()
    half = {i: 0.5 * g for i, g in g_dense.items()}
    tests = {v: (claim.add(gain, half, bound=1.5), mean(gain))
             for v in structured for gain in [_gain(samples[(v, bench)], lo, hi)]}

    def verdict() -> Claim:
        collapsed = all(c.every.high < 0 for c, _ in tests.values())
        kept = any(c.some.low > 0 for c, _ in tests.values())
        v = "held" if collapsed else "not held" if kept else "undecided"
        shown = "some" if v == "not held" else "every"
        level = claim.level_some if shown == "some" else claim.level_every
        parts = [f"{name}: gain {pts(gain)}, minus half of dense's: {pts(getattr(c, shown).delta)} "
                 f"{ci(getattr(c, shown))}" for name, (c, gain) in tests.items()]
        return Claim("a", statement, bench, v, f"points from B={lo} to B={hi}, dense gains {pts(dense_gain)} "
                     f"(half: {pts(dense_gain / 2)}), {at(level)}; " + "; ".join(parts), level)

    return verdict


def low_sparsity_retains_tts(bench: str, variants: dict[str, dict], samples: dict, budgets: list[int],
                             family: Family) -> Verdict:
    """(b) Non-inferiority at every budget: held when every unstructured variant at ≤ 20 % has, at every
    budget, a difference to dense whose lower bound (at the claim's level) lies above −margin; not held
    when one is shown worse than −margin (its upper bound below it, adjusted over the comparisons);
    undecided otherwise."""
    statement = (f"Unstructured pruning at ≤ {LOW_SPARSITY:.0%} retains dense test-time scaling "
                 f"(non-inferiority, margin {100 * MARGIN:.0f} points)")
    low = sorted(n for n, r in variants.items()
                 if r["kind"] == "unstructured" and 0 < r["target_sparsity"] <= LOW_SPARSITY + 1e-9)
    dense = _dense(variants)
    if not low or dense is None:
        return lambda: Claim("b", statement, bench, "not tested", f"needs dense and unstructured variants at "
                             f"≤ {LOW_SPARSITY:.0%}")
    claim = family.claim()
    tests = {(v, b): claim.add(item_means(samples[(v, bench)], b), item_means(samples[(dense, bench)], b))
             for v in low for b in budgets}
    return lambda: non_inferiority("b", statement, bench, claim, tests,
                                   f"{len(low)} variant(s) × {len(budgets)} budgets")


def allocation_matters_more_at_high_sparsity(bench: str, variants: dict[str, dict], samples: dict,
                                             budgets: list[int], family: Family) -> Verdict:
    """(c) An interaction at the largest budget. For a non-uniform allocation A of one method and regime,
    the effect e = A − uniform per item at the lowest and the highest sparsity where both exist, and the
    size contrast per item c_i = s_hi·e_hi,i − s_lo·e_lo,i (s the sign of each mean effect, so c estimates
    |ē_hi| − |ē_lo|: how much larger A's effect is at high sparsity, whichever way it points), paired on
    the same items. Held when some contrast's interval lies above 0 (adjusted over the claim's
    comparisons); not held when every contrast's interval lies below the margin (each at the claim's
    level: the effect grows by less than δ); undecided otherwise. A variant is compared only with a uniform
    variant of its own method, regime and sparsity (to the percent) and with the same allocation (its
    whole name) at the other sparsity; where that pairing is missing or ambiguous (several candidates), or
    the sparsity is neither the lowest nor the highest, the evidence names it. N:M patterns are no
    allocation."""
    statement = "Non-uniform allocation matters more at high sparsity (interaction)"
    if not budgets:
        return lambda: Claim("c", statement, bench, "not tested", "no budgets")
    top = budgets[-1]
    # (method, regime) → sparsity → allocation (whole name, file path included) → variant names
    groups: dict[tuple[str, str], dict[float, dict[str, list[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for name, r in variants.items():
        if r["kind"] == "unstructured" and r["allocation"] not in ("", "n:m"):
            key = (r["method"], r.get("regime", ""))
            groups[key][round(r["target_sparsity"], 2)][r["allocation"]].append(name)
    means: dict[str, dict[str, float]] = {}

    def acc(v: str) -> dict[str, float]:
        if v not in means:
            means[v] = item_means(samples[(v, bench)], top)
        return means[v]

    claim = family.claim()
    tests: list[Interaction] = []
    compared: set[str] = set()
    for (method, _regime), by_level in groups.items():
        for alloc in sorted({a for by in by_level.values() for a in by if a != "uniform"}):
            levels = sorted(s for s, by in by_level.items() if alloc in by and "uniform" in by)
            if len(levels) < 2:
                continue
            lo, hi = levels[0], levels[-1]
            pair = [by_level[s][a] for s in (lo, hi) for a in (alloc, "uniform")]
            if any(len(names) != 1 for names in pair):
                continue  # several variants of one allocation at one sparsity (other knobs): no guess
            (vl,), (ul,), (vh,), (uh,) = pair
            e_lo, e_hi = minus(acc(vl), acc(ul)), minus(acc(vh), acc(uh))
            m_lo, m_hi = mean(e_lo), mean(e_hi)
            s_hi = 1.0 if m_hi >= 0 else -1.0
            s_lo = s_hi if m_lo == 0 else (1.0 if m_lo > 0 else -1.0)
            size = {i: s_hi * e_hi[i] - s_lo * e_lo[i] for i in e_hi if i in e_lo}
            tests.append(Interaction(f"{method} {alloc}", lo, hi, claim.add(size, {i: 0.0 for i in size}, bound=2.0),
                                     m_hi, m_lo))
            compared |= {vl, vh}
    left = sorted(n for by_level in groups.values() for by in by_level.values() for a, names in by.items()
                  if a != "uniform" for n in names if n not in compared)
    note = (f"; not compared: {', '.join(left)} (a middle sparsity, or no single uniform variant of the same "
            "method, regime and sparsity, or no single variant of the same allocation at the lowest and highest "
            "sparsity)" if left else "")
    if not tests:
        return lambda: Claim("c", statement, bench, "not tested", "needs uniform and another allocation of one "
                             "method and regime at two or more sparsities" + note)

    def verdict() -> Claim:
        held = any(t.test.some.low > 0 for t in tests)
        negligible = all(t.test.every.high < MARGIN for t in tests)
        v = "held" if held else "not held" if negligible else "undecided"
        shown = "every" if v == "not held" else "some"
        level = claim.level_every if shown == "every" else claim.level_some
        parts = [f"{t.label}: vs uniform {pts(t.effect_lo)} at {t.lo:.0%}, {pts(t.effect_hi)} at {t.hi:.0%}; "
                 f"larger at high sparsity by {pts(getattr(t.test, shown).delta)} {ci(getattr(t.test, shown))}"
                 for t in tests]
        return Claim("c", statement, bench, v, f"points at B={top}, {at(level)}; " + "; ".join(parts) + note,
                     level)

    return verdict


@dataclass
class Interaction:
    """One allocation's size contrast: |effect| at the high sparsity minus |effect| at the low one."""

    label: str
    lo: float
    hi: float
    test: Comparison
    effect_hi: float  # mean of (allocation − uniform) at hi
    effect_lo: float


def quantization_keeps_tts(bench: str, variants: dict[str, dict], samples: dict, budgets: list[int],
                           family: Family) -> Verdict:
    """(d) Non-inferiority of every quantized variant to its unquantized counterpart at every budget, by
    (b)'s rule and margin: the counterpart is the variant its ``quantized_from`` names (identical but for
    the quantization); a dense model quantized without pruning (kind ``quantized``) without one is compared
    with dense. A quantized variant whose counterpart is not in the study is named, never guessed."""
    statement = (f"Quantization on top of pruning keeps test-time scaling (non-inferiority to the unquantized "
                 f"counterpart, margin {100 * MARGIN:.0f} points)")
    quantized = sorted(n for n, r in variants.items() if not _unquantized(r))
    pairs: dict[str, str] = {}
    for name in quantized:
        r = variants[name]
        base = r.get("quantized_from") or (_dense(variants) if r["kind"] == "quantized" else None)
        if base in variants and base != name:
            pairs[name] = base
    unpaired = [n for n in quantized if n not in pairs]
    note = (f"; not paired: {', '.join(unpaired)} (no unquantized counterpart in the study)" if unpaired else "")
    if not pairs:
        return lambda: Claim("d", statement, bench, "not tested",
                             "needs a quantized variant and its unquantized counterpart" + note)
    claim = family.claim()
    tests = {(q, b): claim.add(item_means(samples[(q, bench)], b), item_means(samples[(base, bench)], b))
             for q, base in pairs.items() for b in budgets}
    what = (f"{len(pairs)} pair(s) ({', '.join(f'{q} vs {base}' for q, base in pairs.items())}) × {len(budgets)} "
            "budgets")
    return lambda: non_inferiority("d", statement, bench, claim, tests, what, note)


PRUNING_RULES = (layer_removal_collapses, low_sparsity_retains_tts, allocation_matters_more_at_high_sparsity)
RULES = (*PRUNING_RULES, quantization_keeps_tts)


def judge(pooled: list[dict], samples: dict, alpha: float = ALPHA) -> list[Claim]:
    """Every claim on every benchmark, their verdicts adjusted together (the module docstring)."""
    family = Family()
    pending = []
    for bench in dict.fromkeys(r["benchmark"] for r in pooled):
        budgets = sorted({r["budget"] for r in pooled if r["benchmark"] == bench})
        variants = _variants(bench, pooled)
        pruned = {name: r for name, r in variants.items() if _unquantized(r)}
        pending += [rule(bench, pruned, samples, budgets, family) for rule in PRUNING_RULES]
        pending.append(quantization_keeps_tts(bench, variants, samples, budgets, family))
    family.resolve(alpha)
    claims = [verdict() for verdict in pending]
    for c in claims:
        c.tests = family.tested
    return claims
