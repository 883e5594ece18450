"""The report's diagnostics on hand-made samples: thinking length against dense (paired on items, t
interval), found-then-lost judged by the grader's own equality (never a substring test), and the section,
CSV and plot a report writes, with a "None:" line where a quantity cannot be computed."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from prunescale.report.diagnostics import (
    MathEquivalence,
    answer_kind,
    choice_candidates,
    diagnose,
    exact,
    found_then_lost,
    math_candidates,
    thinking_vs_dense,
    tiny_candidates,
)
from prunescale.stats.intervals import accuracy


@pytest.fixture(scope="module")
def math_equal():
    """Math-Verify in the grader's worker pool, as the report runs it (started once for the module)."""
    equal = MathEquivalence(workers=1, timeout=30.0)
    yield equal
    equal.close()


def _row(item: str, thinking: str, gold: str, correct: bool = False, budget: int = 64, seed: int = 0,
         tokens: int = 10) -> dict:
    return {"item_id": item, "budget": budget, "seed": seed, "sample": 0, "thinking": thinking, "gold": gold,
            "correct": correct, "thinking_tokens": tokens, "status": "ok" if correct else "no_answer",
            "forced_end": False}


def _lost(rows: list[dict], bench: str, equal) -> dict:
    """The found-then-lost columns of a one-variant study's only budget."""
    (row,) = diagnose({("v", bench): rows}, None, equal)
    return row


def test_found_then_lost_uses_the_graders_equivalence_not_a_substring(math_equal):
    """0.5 is the gold \\frac{1}{2} and 2\\sqrt{3} is \\sqrt{12} (Math-Verify; no substring of either thinking
    is the gold), while 14 and 40 are not the gold 4 (a substring test would count them)."""
    cases = [
        ("First, x = 0.5 since the two halves match.", r"\frac{1}{2}", 1),
        (r"So the length is \boxed{2\sqrt{3}} and we stop.", r"\sqrt{12}", 1),
        (r"Either \boxed{(2, 5)} or \boxed{(1, 1)}.", "(2,5)", 1),  # every box, not only a line's last
        ("There are 14 apples and 40 pears.", "4", 0),
        ("I have no idea.", "7", 0),
    ]
    for thinking, gold, found in cases:
        lost = _lost([_row("q", thinking, gold)], "gsm8k", math_equal)
        assert (lost["lost"], lost["wrong"]) == (found, 1), (thinking, gold)


def test_found_then_lost_counts_wrong_samples_only(math_equal):
    """A correct sample whose thinking holds the gold is no loss: the denominator is the wrong samples."""
    rows = [_row("a", "the total is 12", "12", correct=True), _row("b", "the total is 12", "12"),
            _row("c", "the total is 13", "12")]
    lost = _lost(rows, "gsm8k", math_equal)
    assert (lost["lost"], lost["wrong"], lost["wrong_items"]) == (1, 2, 2) and lost["lost_rate"] == 0.5


def test_math_candidates_read_the_forms_the_grader_reads():
    text = "Step 1: 1,234 items.\nSo $\\frac{3}{4}$ of them.\nThe answer is x+1.\nThus \\boxed{\\frac{a}{b}} -7 and 3/8"
    found = math_candidates(text)
    assert {"1", "1,234", "\\frac{3}{4}", "x+1", "\\frac{a}{b}", "-7", "3/8", "3", "8"} <= found
    assert {"(2, 5)", "7"} <= math_candidates("either \\boxed{(2, 5)} or \\boxed{7}")  # every box of a line
    assert "Step" not in found and not any("1: 1" in c for c in found)


def test_choice_letters_are_read_strictly():
    """A letter counts only where the grader's strict extractor would read it as an answer: "B-cells" in
    prose is no answer B (a substring test would find it)."""
    assert choice_candidates("Option B-cells react.\nBy elimination,\nAnswer: C\n") == {"C"}
    rows = [_row("q1", "B-cells react, so it is unclear.", "B"), _row("q2", "so the answer is (D)\nthen", "D")]
    lost = _lost(rows, "gpqa_diamond", exact)
    assert answer_kind("gpqa_diamond", rows) == "choice" and (lost["lost"], lost["wrong"]) == (1, 2)


def test_tiny_reads_the_state_its_last_step_reached():
    """The tiny reasoner's thinking is found when its last complete step reached the gold (arith and
    pointer); an intermediate state equal to the gold is no find."""
    assert tiny_candidates("a-5=8\nb+4=2\nc*7=4\n") == {"4"}
    assert tiny_candidates("1a>f\n2f>i\n3i>d\n4d>") == {"d"}  # the cut line is not a step
    rows = [_row("t1", "a-5=8\nb+4=2\nc*7=4\n", "4"), _row("t2", "a-5=4\nb+4=8\n", "4"),
            _row("t3", "1a>f\n2f>g", "g"), _row("t4", "", "3")]
    lost = _lost(rows, "tiny", exact)
    assert answer_kind("tiny", rows) == "tiny" and (lost["lost"], lost["wrong"]) == (2, 4)


def test_found_then_lost_rate_and_interval_are_one_procedure():
    """Items are the unit: the rate is the mean of per-item shares (an item with three wrong seeds weighs as
    one: 1/3 here, where the pooled samples would say 3/5), and the interval is the accuracy interval of
    those shares; the counts are samples."""
    rows = [_row("a", "", "1", seed=s) for s in range(3)] + [_row("b", "", "1"), _row("c", "", "1")]
    found = {id(r): r["item_id"] == "a" for r in rows}
    got = found_then_lost(rows, found)
    est = accuracy([[1.0, 1.0, 1.0], [0.0], [0.0]])
    assert (got["lost"], got["wrong"], got["wrong_items"]) == (3, 5, 3)
    assert got["lost_rate"] == pytest.approx(1 / 3) and (got["lost_low"], got["lost_high"]) == (est.low, est.high)


def test_thinking_vs_dense_is_paired_on_common_items():
    """The variant thinks 10 tokens more than dense on each item it was evaluated on (±1), and dense's other
    items, far longer, do not enter: an unpaired difference of means would say about −40."""
    rng = np.random.default_rng(0)
    dense = [_row(f"i{k}", "", "1", tokens=100 + k) for k in range(10)]
    dense += [_row(f"j{k}", "", "1", tokens=200) for k in range(10)]
    noise = rng.choice([-1, 1], size=10)
    variant = [_row(f"i{k}", "", "1", seed=s, tokens=110 + k + int(noise[k]) + (2 * s - 1)) for k in range(10)
               for s in (0, 1)]
    got = thinking_vs_dense(variant, dense)
    d = noise.astype(float) + 10
    half = 2.2621571627 * d.std(ddof=1) / math.sqrt(10)  # t_{0.975, 9}
    assert got["paired_items"] == 10 and got["thinking_delta"] == pytest.approx(d.mean())
    assert (got["thinking_low"], got["thinking_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert got["thinking_ratio"] == pytest.approx((104.5 + d.mean()) / 104.5)


# The report: section, table, CSV and plot from a study folder written by hand.

def _study(tmp_path: Path, with_dense: bool = True) -> Path:
    from prunescale.study.results import INDEX_VERSION, POOLED_COLUMNS, POOLED_INT, TEXT_COLUMNS

    out = tmp_path / "study"
    variants = {"dense": ("dense", 32, 0.0), "w50": ("unstructured", 4, 0.5)}
    if not with_dense:
        variants.pop("dense")
    index = {"version": INDEX_VERSION, "study": "diag", "model": "m", "tuning_split": "validation",
             "eval": {"split": "test", "seeds": [0], "samples": 1, "temperature": 0.0, "grade_timeout": 30.0},
             "variants": []}
    pooled = []
    for name, (kind, bits, sparsity) in variants.items():
        folder = out / "eval" / name
        folder.mkdir(parents=True)
        rows = [_row(f"t{k}", "a-5=8\nb+4=2\n" if name == "w50" else "a-5=8\nb+4=2\nc*7=4\n", "4",
                     correct=name == "dense" and b == 8 and k < 3, budget=b, tokens=b // (2 if name == "w50" else 1))
                for b in (0, 8) for k in range(4)]
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        index["variants"].append({"name": name, "kind": kind, "method": "wanda" if sparsity else "dense",
                                  "prune": None, "evals": [{"benchmark": "tiny", "folder": f"eval/{name}"}]})
        for b in (0, 8):
            acc = sum(r["correct"] for r in rows if r["budget"] == b) / 4
            pooled.append({"variant": name, "kind": kind, "benchmark": "tiny", "split": "test", "budget": b,
                           "items": 4, "seeds": 1, "observations": 4, "accuracy": acc, "ci_low": 0.0,
                           "ci_high": 1.0, "n_eff": 4.0, "p": math.nan, "target_sparsity": sparsity,
                           "quantize": "none", "bits": bits, "weight_bytes": 3 * 2**20 * bits / 32,
                           "quantized_from": ""})
    (out / "index.json").write_text(json.dumps(index))
    columns = list(dict.fromkeys([*POOLED_COLUMNS, "quantize", "bits", "weight_bytes", "quantized_from"]))
    with (out / "pooled.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        for r in pooled:
            w.writerow({c: r.get(c, "" if c in TEXT_COLUMNS else 0 if c in POOLED_INT else math.nan)
                        for c in columns})
    return out


def _section(report: str, title: str) -> str:
    return report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_report_has_diagnostics_csv_plot_and_weight_columns(tmp_path):
    from prunescale.report.study_report import write_report

    out = _study(tmp_path)
    report = write_report(out).read_text()
    section = _section(report, "Diagnostics")
    assert "### Diagnostics on tiny" in section and "None:" not in section.split("###")[0]
    assert "| w50 | 8 | 4.0 | -4.0 [-4.0, -4.0] | 0.50 | 0.0 [" in section  # last step 2, gold 4: not found
    assert "| 0 / 4 |" in section
    assert "| dense | 8 | 8.0 | (dense) | – | 100.0 [" in section and "| 1 / 1 |" in section  # last step 4
    with (out / "diagnostics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"dense", "w50"}
    assert (out / "diagnostics.png").stat().st_size > 0 and "](diagnostics.png)" in report
    pruning = _section(report, "Pruning and quantization")
    assert "| bits | quantize | weights MiB (est.) |" in pruning and "ESTIMATE" in pruning
    assert "| w50 | unstructured |" in pruning and "| 4 | none | 0.4 |" in pruning
    assert "(d) Quantization on top of pruning" in report


def test_diagnostics_say_none_without_dense(tmp_path):
    from prunescale.report.study_report import write_report

    report = write_report(_study(tmp_path, with_dense=False)).read_text()
    section = _section(report, "Diagnostics")
    assert "Thinking vs dense — None: the study has no dense variant" in section
    assert "| w50 | 8 | 4.0 | – | – | 0.0 [" in section  # found-then-lost needs no dense


def test_the_plot_takes_a_bound_a_rounding_error_inside_its_point(tmp_path):
    """Wilson's upper bound at 100 % on 13 items is 1 − 1e-16: the error bar is clipped at 0, not refused
    (matplotlib raises on a negative error, which stopped a whole study's report)."""
    from prunescale.report.diagnostics import COLUMNS
    from prunescale.report.diagnostics_report import plot
    from prunescale.stats.intervals import wilson

    low, high = wilson(1.0, 13)
    assert high < 1.0  # the premise
    row = dict.fromkeys(COLUMNS, math.nan) | {"variant": "dense", "benchmark": "t", "budget": 8, "lost_rate": 1.0,
                                              "lost_low": low, "lost_high": high}
    assert plot(tmp_path, [row], "dense").stat().st_size > 0
