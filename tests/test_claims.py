"""The reference study's claims judged by their stated rules, on hand-made per-item data."""

from __future__ import annotations

import pytest

from prunescale.report.claims import judge

ITEMS = [f"i{k}" for k in range(100)]
BUDGETS = (0, 96)


def _samples(correct_at: dict[int, float]) -> list[dict]:
    """One seed: the first ⌊share × 100⌋ items correct at each budget."""
    return [{"item_id": item, "budget": b, "seed": 0, "correct": k < round(share * 100)}
            for b, share in correct_at.items() for k, item in enumerate(ITEMS)]


def _pooled(name: str, kind: str, samples: list[dict], dense: list[dict] | None, method: str = "",
            allocation: str = "", sparsity: float = 0.0, regime: str = "") -> list[dict]:
    from prunescale.stats.paired import paired

    rows = []
    for b in BUDGETS:
        mine = {r["item_id"]: float(r["correct"]) for r in samples if r["budget"] == b}
        row = {"variant": name, "kind": kind, "method": method, "allocation": allocation,
               "target_sparsity": sparsity, "regime": regime, "benchmark": "t", "budget": b,
               "accuracy": sum(mine.values()) / len(mine)}
        nan = float("nan")
        row.update(delta=nan, delta_low=nan, delta_high=nan, p=nan)
        if dense is not None:
            d = paired(mine, {r["item_id"]: float(r["correct"]) for r in dense if r["budget"] == b})
            row.update(delta=d.delta, delta_low=d.low, delta_high=d.high, p=d.p)
        rows.append(row)
    return rows


def _study(variants: dict[str, tuple]) -> tuple[list[dict], dict]:
    dense = _samples({0: 0.2, 96: 0.9})
    pooled, samples = _pooled("dense", "dense", dense, None), {("dense", "t"): dense}
    for name, (kind, shares, method, allocation, sparsity, *regime) in variants.items():
        s = _samples(shares)
        samples[(name, "t")] = s
        pooled += _pooled(name, kind, s, dense, method, allocation, sparsity, *regime)
    return pooled, samples


def _verdicts(variants) -> dict[str, str]:
    pooled, samples = _study(variants)
    return {c.key: c.verdict for c in judge(pooled, samples)}


def test_every_claim_held_on_a_study_that_shows_it():
    v = _verdicts({
        "short": ("structured", {0: 0.2, 96: 0.25}, "shortgpt", "", 0.0),
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7),
    })
    assert v == {"a": "held", "b": "held", "c": "held", "d": "not tested"}


def test_claims_not_held_when_the_data_says_otherwise():
    v = _verdicts({
        "short": ("structured", {0: 0.2, 96: 0.88}, "shortgpt", "", 0.0),  # keeps its scaling
        "w20": ("unstructured", {0: 0.2, 96: 0.6}, "wanda", "uniform", 0.2),  # 30 points worse
        "w20owl": ("unstructured", {0: 0.2, 96: 0.6}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7),  # allocation changes nothing
    })
    assert v == {"a": "not held", "b": "not held", "c": "not held", "d": "not tested"}


def test_undecided_and_not_tested():
    assert _verdicts({}) == {"a": "not tested", "b": "not tested", "c": "not tested", "d": "not tested"}
    v = _verdicts({"w20": ("unstructured", {0: 0.2, 96: 0.85}, "wanda", "uniform", 0.2)})  # 5 points: too close
    assert v["b"] == "undecided"


def test_dense_is_found_by_its_kind_and_n_m_is_no_allocation():
    pooled, samples = _study({
        "short": ("structured", {0: 0.2, 96: 0.25}, "shortgpt", "", 0.0),
        "w50": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.5),
        "w24": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "n:m", 0.5),  # 40 points worse, but no allocation
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "owl", 0.2),
    })
    renamed = [r | {"variant": "base"} if r["variant"] == "dense" else r for r in pooled]
    samples = {("base" if k[0] == "dense" else k[0], k[1]): v for k, v in samples.items()}
    verdicts = {c.key: c.verdict for c in judge(renamed, samples)}
    assert verdicts["a"] == "held"  # dense is the variant of kind dense, here named "base"
    assert verdicts["c"] == "not tested"  # at 50 % there is no allocation to compare, only N:M


def test_c_is_the_interaction_not_a_difference_in_significance():
    """OWL costs 3 points at 20 % (not significant) and 10 at 70 % (significant): "significant here, not
    there" held (c) on main; the interaction, 7 points, is not shown, so (c) is undecided."""
    pooled, samples = _study({
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.87}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.7}, "wanda", "owl", 0.7),
    })
    from prunescale.stats.paired import paired

    hi = paired(_item(samples, "w70owl"), _item(samples, "w70"))
    lo = paired(_item(samples, "w20owl"), _item(samples, "w20"))
    assert hi.excludes_zero() and not lo.excludes_zero()  # the fallacy's premise
    (c,) = [c for c in judge(pooled, samples) if c.key == "c"]
    assert c.verdict == "undecided" and "larger at high sparsity by +7.0 [" in c.evidence


def _item(samples: dict, name: str) -> dict[str, float]:
    return {r["item_id"]: float(r["correct"]) for r in samples[(name, "t")] if r["budget"] == 96}


def test_b_is_non_inferiority_with_its_margin_stated():
    pooled, samples = _study({"w20": ("unstructured", {0: 0.2, 96: 0.88}, "wanda", "uniform", 0.2)})
    (b,) = [c for c in judge(pooled, samples) if c.key == "b"]
    assert "non-inferiority, margin 5 points" in b.statement and "retains" in b.statement
    assert "against the margin −5" in b.evidence


def test_verdicts_are_adjusted_together():
    """Bonferroni over the tested claims (K); "every comparison" statements at 1 − α/K, "some comparison"
    statements at 1 − α/(K·m) over the claim's m comparisons."""
    w20 = ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2)
    alone = {c.key: c for c in judge(*_study({"w20": w20}))}
    assert alone["b"].verdict == "held" and alone["b"].tests == 1 and alone["b"].level == pytest.approx(0.95)
    short = ("structured", {0: 0.2, 96: 0.25}, "shortgpt", "", 0.0)
    both = {c.key: c for c in judge(*_study({"w20": w20, "short": short}))}
    assert both["b"].tests == 2 and both["b"].level == pytest.approx(1 - 0.05 / 2)
    assert "intervals at 97.50 %" in both["b"].evidence
    worse = ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "uniform", 0.2)
    shown = {c.key: c for c in judge(*_study({"w20": worse, "short": short}))}
    # "not held" says one of 2 budgets' comparisons is worse: adjusted over them
    assert shown["b"].verdict == "not held" and shown["b"].level == pytest.approx(1 - 0.05 / (2 * 2))


def test_c_never_compares_across_pruning_regimes():
    v = _verdicts({
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2, "sequential"),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "owl", 0.2, "dense-activations"),
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7, "sequential"),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7, "dense-activations"),
    })
    assert v["c"] == "not tested"
    pooled, samples = _study({
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7, "sequential"),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7, "dense-activations"),
    })
    (c,) = [c for c in judge(pooled, samples) if c.key == "c"]
    assert "not compared: w70owl (" in c.evidence


def _c(variants: dict) -> object:
    pooled, samples = _study(variants)
    return next(c for c in judge(pooled, samples) if c.key == "c")


def test_c_opposite_effects_of_equal_size_do_not_hold():
    """OWL costs 12 points at 20 % and gains 13 at 70 %: the allocation matters about as much at both, so
    "matters more at high sparsity" must not hold (the difference of the signed effects, 25 points, would)."""
    c = _c({
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.78}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.63}, "wanda", "owl", 0.7),
    })
    assert c.verdict == "undecided" and "larger at high sparsity by +1.0 [" in c.evidence


def test_c_an_effect_that_shrinks_is_not_held():
    c = _c({
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.6}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7),
    })
    assert c.verdict == "not held" and "larger at high sparsity by -30.0 [" in c.evidence


def test_c_names_what_it_could_not_pair():
    """Two OWL variants at 70 % (other knobs) and an AlphaPruning variant with no partner at 20 %: nothing is
    guessed, everything left out is named."""
    c = _c({
        "w20": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2),
        "w20owl": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7),
        "w70owl-a": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7),
        "w70owl-b": ("unstructured", {0: 0.2, 96: 0.7}, "wanda", "owl", 0.7),
        "w70alpha": ("unstructured", {0: 0.2, 96: 0.3}, "wanda", "alpha", 0.7),
    })
    assert c.verdict == "not tested"
    assert "not compared: w20owl, w70alpha, w70owl-a, w70owl-b (" in c.evidence


def test_a_accounts_for_the_error_of_denses_own_gain():
    """(a) tests G_variant − ½·G_dense per item: a variant whose gain is exactly half of dense's is undecided,
    never held."""
    v = _verdicts({"short": ("structured", {0: 0.2, 96: 0.55}, "shortgpt", "", 0.0)})
    assert v["a"] == "undecided"


# Quantized variants: (a)–(c) never read them; (d) tests each against its unquantized counterpart.

W20 = ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "uniform", 0.2)


def _quantized(pooled: list[dict], samples: dict, name: str, kind: str, shares: dict[int, float],
               quantized_from: str, method: str = "", allocation: str = "", sparsity: float = 0.0,
               quantize: str = "gptq-w4-g128") -> None:
    """Add a quantized variant's rows (the columns results.py writes for it) and samples to a study."""
    s = _samples(shares)
    samples[(name, "t")] = s
    rows = _pooled(name, kind, s, samples[("dense", "t")], method, allocation, sparsity)
    pooled += [r | {"quantize": quantize, "bits": 4, "quantized_from": quantized_from} for r in rows]


def _claims(pooled: list[dict], samples: dict) -> dict:
    return {c.key: c for c in judge(pooled, samples)}


def test_quantized_variants_do_not_move_claims_a_to_c():
    """Quantized rows that would flip (a), (b) and (c) if read as pruning variants leave their verdicts as
    they were: a quantized layer-removal variant that keeps its scaling, a quantized 20 % variant 40 points
    worse, a second OWL variant at 70 % (which makes (c)'s pairing ambiguous)."""
    pooled, samples = _study({
        "short": ("structured", {0: 0.2, 96: 0.25}, "shortgpt", "", 0.0),
        "w20": W20,
        "w20owl": ("unstructured", {0: 0.2, 96: 0.9}, "wanda", "owl", 0.2),
        "w70": ("unstructured", {0: 0.2, 96: 0.8}, "wanda", "uniform", 0.7),
        "w70owl": ("unstructured", {0: 0.2, 96: 0.5}, "wanda", "owl", 0.7),
    })
    before = {k: c.verdict for k, c in _claims(pooled, samples).items() if k in "abc"}
    _quantized(pooled, samples, "short-q4", "structured", {0: 0.2, 96: 0.88}, "short", "shortgpt")
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.5}, "w20", "wanda", "uniform", 0.2)
    _quantized(pooled, samples, "w70owl-q4", "unstructured", {0: 0.2, 96: 0.8}, "w70owl", "wanda", "owl", 0.7)
    after = _claims(pooled, samples)
    assert before == {"a": "held", "b": "held", "c": "held"}
    assert {k: c.verdict for k, c in after.items() if k in "abc"} == before
    assert after["d"].verdict == "not held"  # the quantized variants are read by (d) alone
    # the premise: read as pruning variants, these rows would have flipped every verdict
    as_pruning = [{k: v for k, v in r.items() if k not in ("quantize", "quantized_from")} for r in pooled]
    flipped = _claims(as_pruning, samples)
    assert {k: flipped[k].verdict for k in "abc"} == {"a": "not held", "b": "not held", "c": "not tested"}


def test_d_held_when_quantization_keeps_scaling():
    pooled, samples = _study({"w20": W20})
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.9}, "w20", "wanda", "uniform", 0.2)
    d = _claims(pooled, samples)["d"]
    assert d.verdict == "held" and "non-inferiority" in d.statement and "margin 5 points" in d.statement
    assert "w20-q4 vs w20" in d.evidence and "against the margin −5" in d.evidence


def test_d_not_held_when_a_quantized_variant_is_clearly_worse():
    pooled, samples = _study({"w20": W20})
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.9}, "w20", "wanda", "uniform", 0.2)
    _quantized(pooled, samples, "w20-rtn", "unstructured", {0: 0.2, 96: 0.5}, "w20", "wanda", "uniform", 0.2,
               quantize="rtn-w4-g128")
    d = _claims(pooled, samples)["d"]
    assert d.verdict == "not held" and "shown worse: w20-rtn at B=96, Δ -40.0" in d.evidence


def test_d_undecided_within_the_margin():
    pooled, samples = _study({"w20": W20})
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.87}, "w20", "wanda", "uniform", 0.2)
    d = _claims(pooled, samples)["d"]
    # 3 points worse: within the margin, but the interval reaches past it, so neither verdict is shown
    assert d.verdict == "undecided" and "lowest bound: w20-q4 at B=96, Δ -3.0 [" in d.evidence


def test_d_not_tested_without_a_quantized_pair_and_names_the_unpaired():
    pooled, samples = _study({"w20": W20})
    assert _claims(pooled, samples)["d"].verdict == "not tested"
    _quantized(pooled, samples, "w30-q4", "unstructured", {0: 0.2, 96: 0.2}, "", "wanda", "uniform", 0.3)
    _quantized(pooled, samples, "w50-q4", "unstructured", {0: 0.2, 96: 0.2}, "w50", "wanda", "uniform", 0.5)
    d = _claims(pooled, samples)["d"]
    assert d.verdict == "not tested"
    assert "not paired: w30-q4, w50-q4 (no unquantized counterpart in the study)" in d.evidence
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.9}, "w20", "wanda", "uniform", 0.2)
    d = _claims(pooled, samples)["d"]
    assert d.verdict == "held" and "not paired: w30-q4, w50-q4 (" in d.evidence and "w20-q4 vs w20" in d.evidence


def test_d_a_quantized_dense_model_is_compared_with_dense():
    """Kind ``quantized`` (the dense model quantized, no pruning): its counterpart is dense, named by
    ``quantized_from`` or found by its kind."""
    for named in ("dense", ""):
        pooled, samples = _study({})
        _quantized(pooled, samples, "dense-q4", "quantized", {0: 0.2, 96: 0.5}, named)
        d = _claims(pooled, samples)["d"]
        assert d.verdict == "not held" and "dense-q4 vs dense" in d.evidence


def test_d_counts_in_k_only_when_tested():
    pooled, samples = _study({"w20": W20})
    _quantized(pooled, samples, "w50-q4", "unstructured", {0: 0.2, 96: 0.9}, "w50", "wanda", "uniform", 0.5)
    alone = _claims(pooled, samples)
    assert alone["d"].verdict == "not tested" and alone["b"].tests == 1  # unpaired: no test, K unchanged
    assert alone["b"].level == pytest.approx(0.95)
    _quantized(pooled, samples, "w20-q4", "unstructured", {0: 0.2, 96: 0.9}, "w20", "wanda", "uniform", 0.2)
    both = _claims(pooled, samples)
    assert both["b"].tests == both["d"].tests == 2
    assert both["b"].level == both["d"].level == pytest.approx(1 - 0.05 / 2)
    assert "intervals at 97.50 %" in both["d"].evidence
