"""The study report: ``report.md`` and a self-contained ``report.html`` (plots embedded), PNG + SVG plots.

Everything is computed locally from the study folder: the TTS curves with 95 % CIs, accuracy vs the
thinking tokens actually used and vs estimated inference FLOPs, paired tests against dense, the
pruning and quantization table, parallel-scaling metrics when several samples were drawn, a
reasoning-trace panel, and the diagnostics (thinking length vs dense, found-then-lost) with their plot.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from prunescale.report.claims import ALPHA, MARGIN, judge
from prunescale.report.diagnostics_report import diagnostics
from prunescale.report.plots import accuracy_plots
from prunescale.report.sections import Section, pct_ci
from prunescale.stats.power import minimum_detectable_difference
from prunescale.study.results import manifest, notices, read_index, read_pooled
from prunescale.tts.run import read_samples


def _load(out: Path) -> tuple[dict, list[dict], dict[str, dict], dict[tuple[str, str], list[dict]]]:
    """The study's index, its pooled table, each variant's manifest and each run's samples: every folder
    comes from the index the runner wrote, never from re-planning the study."""
    index = read_index(out)
    rows = read_pooled(out)
    manifests = {v["name"]: m for v in index["variants"] if (m := manifest(out, v))}
    samples = {(v["name"], ev["benchmark"]): read_samples(out / ev["folder"] / "samples.jsonl")
               for v in index["variants"] for ev in v["evals"]}
    return index, rows, manifests, samples


def _repetition(text: str) -> float:
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return 0.0 if not lines else 1 - len(set(lines)) / len(lines)


def trace_panel(rows: list[dict]) -> dict:
    """Reasoning-trace statistics at the largest budget."""
    if not rows:
        return {}
    top = max(r["budget"] for r in rows)
    rs = [r for r in rows if r["budget"] == top]
    n = len(rs)
    return {
        "budget": top,
        "mean_thinking_tokens": sum(r["thinking_tokens"] for r in rs) / n,
        "truncation_rate": sum(r["forced_end"] for r in rs) / n,
        "wait_per_trace": sum(len(re.findall(r"\bWait\b", r["thinking"])) for r in rs) / n,
        "self_check_per_trace": sum(
            len(re.findall(r"\b(?:check|verify|double-check)\b", r["thinking"], re.I)) for r in rs
        )
        / n,
        "repetition_rate": sum(_repetition(r["thinking"]) for r in rs) / n,
        "no_answer_rate": sum(r["status"] == "no_answer" for r in rs) / n,
    }


def _p(p: float) -> str:
    return "–" if p != p else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _accuracy_sections(bench: str, rows: list[dict], ev: dict) -> list[Section]:
    """Accuracy per variant and budget, pooled over seeds; the paired difference to dense with raw and
    Holm p-values; and what this run could detect."""
    rs = [r for r in rows if r["benchmark"] == bench]
    budgets = sorted({r["budget"] for r in rs})
    variants = list(dict.fromkeys(r["variant"] for r in rs))
    cell = {(r["variant"], r["budget"]): r for r in rs}
    acc_rows = [[v, *(pct_ci(cell[v, b]["accuracy"], cell[v, b]["ci_low"], cell[v, b]["ci_high"])
                      if (v, b) in cell else "–" for b in budgets)] for v in variants]
    any_r = rs[0]
    unit = (f"{any_r['items']} items × {any_r['seeds']} seed(s), {any_r['observations'] // max(1, any_r['items'])} "
            f"observation(s) per item")
    out = [Section(
        f"Accuracy on {bench} ({ev['split']} split) by thinking budget",
        f"Accuracy % [95 % interval] pooled over seeds and samples, items the unit ({unit}): Wilson's interval "
        "at the design-effect sample size (docs/METHODS.md).",
        ["variant", *[f"B={b}" for b in budgets]], acc_rows)]
    diff_rows = []
    for r in rs:
        if r["p"] == r["p"]:
            delta = pct_ci(r["delta"], r["delta_low"], r["delta_high"], signed=True)
            diff_rows.append([r["variant"], str(r["budget"]), delta, _p(r["p"]), _p(r["p_holm"])])
    if diff_rows:
        n_tests = len(diff_rows)
        out.append(Section(
            f"Difference from dense on {bench}",
            f"Paired on the same items (each item's accuracy averaged over its seeds and samples): Δ in points "
            f"[95 % interval] and the two-sided p from one procedure (an adjusted Wald test over items, "
            f"docs/METHODS.md), so the interval excludes 0 exactly when p < 0.05; Holm-adjusted over this "
            f"table's family of {n_tests} comparisons (every variant × budget).",
            ["variant", "budget", "Δ points [95 %]", "p", "p (Holm)"], diff_rows))
    dense = [r for r in rs if r["kind"] == "dense"]
    if dense:
        top = max(dense, key=lambda r: r["budget"])
        mdd = minimum_detectable_difference(top["accuracy"], top["n_eff"])
        out[0].text += (f" Power: dense is at {100 * top['accuracy']:.1f} % at B={top['budget']} (effective n "
                        f"{top['n_eff']:.0f}); this run can detect differences from dense of about "
                        f"{100 * mdd:.1f} points or more (α 0.05, power 0.8); smaller ones are undecided here.")
    return out


def _claims_section(rows: list[dict], samples: dict) -> Section:
    claims = judge(rows, samples)
    k = claims[0].tests if claims else 0
    return Section(
        "Claims of the reference study, on this run",
        "(a) removing layers collapses test-time scaling: each layer-removal variant keeps less than half of "
        "dense's gain from the smallest to the largest budget (its gain minus half of dense's, per item); (b) "
        "unstructured pruning at ≤ 20 % retains dense test-time scaling (the reference's v2 wording): "
        f"non-inferiority to dense at every budget, margin {100 * MARGIN:.0f} points; (c) non-uniform allocation "
        "matters more at high sparsity: an interaction, how much larger the allocation's effect against uniform "
        "is at the highest sparsity than at the lowest, on the same items. The verdicts hold "
        f"together at {100 * (1 - ALPHA):.0f} %: each of the {k} tested claim(s) is a test at {ALPHA:g}/{max(1, k)} "
        "(Bonferroni); a statement about every comparison of a claim uses each interval at that level (an "
        "intersection-union test), one about some comparison adjusts over the claim's comparisons; each row "
        "says the level of the intervals it shows. Rules in docs/METHODS.md: held, not held, undecided (the "
        "intervals allow either), not tested (no variants). (a)–(c) read only unquantized variants; (d) "
        "quantization on top of pruning keeps test-time scaling: each quantized variant against its "
        "unquantized counterpart (the same variant without quantization), non-inferiority at every budget with "
        f"(b)'s margin {100 * MARGIN:.0f} points and rule; it counts in K when tested.",
        ["claim", "benchmark", "verdict", "evidence"],
        [[f"({c.key}) {c.statement}", c.benchmark, c.verdict, c.evidence] for c in claims])


WEIGHT_NOTE = (
    "Weights MiB (est.) is an ESTIMATE, not the size of the saved folder: dense bytes for dense; for a pruned or "
    "quantized variant the kept weights at its bits, plus, when quantized, a scale and a zero point per "
    "quantization group and, for unstructured sparsity, a one-bit-per-weight mask (what a packed format would "
    "need)."
)


def _pruning_section(variants: list[str], manifests: dict[str, dict], rows: list[dict]) -> Section:
    """One row per variant: what was pruned and how (its manifest), beside its weight bits and the estimated
    size of its weights (the pooled table's ``bits``, ``quantize`` and ``weight_bytes``)."""
    first = {r["variant"]: r for r in reversed(rows)}
    body = []
    for v in variants:
        m, r = manifests.get(v, {}), first.get(v, {})
        size = r.get("weight_bytes")
        body.append([
            v, r.get("kind") or m.get("kind", "dense"), m.get("method", "–"), str(m.get("allocation") or "–"),
            m.get("regime") or "–",
            f"{m.get('target_sparsity') or 0:.3f}", f"{m.get('realised_sparsity', 0):.4f}",
            str(r.get("bits") or "–"), r.get("quantize") or "–",
            "–" if size is None or size != size else f"{float(size) / 2**20:.1f}",
            f"{m.get('removed_param_fraction', 0):.4f}", ",".join(map(str, m.get("removed_layers", []))) or "–",
        ])
    return Section(
        "Pruning and quantization",
        "Realised sparsity is measured from the saved weights (structured: share of block parameters removed); "
        "removed fraction is of all parameters. Regime: where the pruning statistics came from — sequential "
        "(each block calibrated on the outputs of the already-pruned blocks), dense-activations (the dense "
        "model, one shared pass), data-free (magnitude). Bits: the weights' bits (the stored dtype's when not "
        "quantized); quantize: the quantization, none when not quantized.",
        ["variant", "kind", "method", "allocation", "regime", "target", "realised", "bits", "quantize",
         "weights MiB (est.)", "removed frac.", "removed layers"], body, note=WEIGHT_NOTE)


def _notices_section(out: Path, index: dict) -> tuple[Section, list[dict]]:
    found = notices(out, index)
    text = ("Every warning a stage of this study raised, once, with the variant and stage it belongs to (also "
            "printed by `prunescale study`)." if found else "None: no stage of this study raised a warning.")
    return Section("Notices", text, ["variant", "stage", "notice"],
                   [[n["variant"], n["stage"], n["notice"]] for n in found]), found


def write_report(out: Path) -> Path:
    """Write report.md, report.html and the plots into the study folder ``out``."""
    out = Path(out)
    index, rows, manifests, samples = _load(out)
    ev = index["eval"]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    plots = accuracy_plots(out, rows, manifests, benches, variants)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    notices_section, _ = _notices_section(out, index)
    sections: list[Section] = [notices_section]
    for bench in benches:
        sections += _accuracy_sections(bench, rows, ev)
    sections.append(_claims_section(rows, samples))
    sections.append(_pruning_section(variants, manifests, rows))
    # parallel scaling
    if ev["samples"] > 1:
        body = []
        for v in index["variants"]:
            for run in v["evals"]:
                path = out / run["folder"] / "summary.json"
                summ = json.loads(path.read_text()) if path.exists() else {}
                for b in summ.get("budgets", []):
                    keys = sorted(k for k in b if "@" in k and not k.endswith("_ci95"))
                    body.append([v["name"], run["benchmark"], str(b["budget"]),
                                 ", ".join(f"{k} {pct_ci(b[k], *b[k + '_ci95'])}" for k in keys)])
        sections.append(Section("Parallel scaling (maj@k, pass@k, cov@k)", "",
                                ["variant", "benchmark", "budget", "metrics %"], body))
    # reasoning traces
    body = []
    for (v, bench), rs in samples.items():
        t = trace_panel(rs)
        if t:
            body.append([
                v,
                bench,
                str(t["budget"]),
                f"{t['mean_thinking_tokens']:.1f}",
                pct(t["truncation_rate"]),
                f"{t['wait_per_trace']:.2f}",
                f"{t['self_check_per_trace']:.2f}",
                pct(t["repetition_rate"]),
                pct(t["no_answer_rate"]),
            ])
    sections.append(Section(
        "Reasoning traces (largest budget)", "",
        ["variant", "benchmark", "budget", "mean thinking", "truncated %", "Wait / trace", "self-checks / trace",
         "repeated lines %", "no answer %"], body))
    dense = next((r["variant"] for r in rows if r["kind"] == "dense"), None)
    kinds = {e["benchmark"]: e["item_kind"] for v in index["variants"] for e in v["evals"] if e.get("item_kind")}
    found, diagnostics_png = diagnostics(out, samples, dense, ev.get("grade_timeout", 5.0), kinds)
    sections += found
    if diagnostics_png is not None:
        plots["diagnostics"] = diagnostics_png
    intro = (
        f"Model `{index['model']}`; {len(variants)} variants; benchmarks {', '.join(benches)} "
        f"({ev['split']} split; tuned knobs, if any, on the {index['tuning_split']} split); seeds "
        f"{ev['seeds']}; {ev['samples']} sample(s) per item; temperature "
        f"{ev['temperature']}. FLOPs are estimated as parameters a token passes through × tokens: "
        "layer removal really saves them; unstructured zeros only save them with sparse kernels, so those "
        "variants are plotted at dense cost."
    )
    md = [
        f"# Study `{index['study']}`",
        "",
        intro,
        "",
        "![TTS curves](tts_curves.png)",
        "",
        "![accuracy vs thinking tokens used](accuracy_vs_tokens.png)",
        "",
        "![accuracy vs FLOPs](accuracy_vs_flops.png)",
        "",
    ]
    if "diagnostics" in plots:
        md += ["![diagnostics: thinking vs dense, found-then-lost](diagnostics.png)", ""]
    md += [section.markdown() for section in sections]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(_html(index["study"], intro, sections, plots))
    return out / "report.md"


def _html(name: str, intro: str, sections: list[Section], plots: dict[str, Path]) -> str:
    imgs = "".join(
        f'<figure><img alt="{k}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{k.replace('_', ' ')}</figcaption></figure>"
        for k, p in plots.items()
    )
    body = "".join(section.html() for section in sections)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "th{background:#f3f3f3}img{max-width:100%}figure{margin:1em 0}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{style}</style></head><body><h1>Study {html.escape(name)}</h1><p>{html.escape(intro)}</p>"
        f"{imgs}{body}</body></html>"
    )
