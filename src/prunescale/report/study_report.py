"""The study report: ``report.md`` and a self-contained ``report.html`` (plots embedded), PNG + SVG plots.

Everything is computed locally from the study folder: the TTS curves with 95 % CIs, accuracy vs the
thinking tokens actually used and vs estimated inference FLOPs, paired tests against dense, the
pruning table, parallel-scaling metrics when several samples were drawn, and a reasoning-trace panel.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prunescale.report.claims import ALPHA, MARGIN, judge
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


def _params(manifest: dict, dense_params: int | None) -> tuple[float | None, float | None]:
    """(parameters a token passes through, nonzero parameters) relative to dense."""
    if not manifest:
        return 1.0, 1.0
    removed = manifest.get("removed_param_fraction", 0.0)
    if manifest.get("kind") == "structured":
        return 1 - removed, 1 - removed
    return 1.0, 1 - removed


def _plots(out: Path, rows: list[dict], manifests: dict, benches: list[str], variants: list[str]) -> dict[str, Path]:
    import matplotlib  # heavy: only when plotting; the backend is chosen before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}
    # TTS curves: accuracy vs budget, one panel per benchmark, shaded 95 % CIs (seeds averaged)
    for name, x_key, xlabel in (
        ("tts_curves", "budget", "thinking budget (tokens)"),
        ("accuracy_vs_tokens", "mean_thinking_tokens", "mean thinking tokens used"),
        ("accuracy_vs_flops", "flops", "relative inference FLOPs per item (dense = 1)"),
    ):
        fig, axes = plt.subplots(1, len(benches), figsize=(6 * len(benches), 4.2), dpi=110, squeeze=False)
        for ax, bench in zip(axes[0], benches):
            ax.set_prop_cycle(color=plt.cm.tab20.colors)  # more variants than the default 10 colours
            dense_tokens = None
            for v in sorted(variants, key=lambda name: bool(manifests.get(name))):  # dense (no manifest) first
                rs = [r for r in rows if r["variant"] == v and r["benchmark"] == bench]
                by_b: dict[int, list[dict]] = defaultdict(list)
                for r in rs:
                    by_b[r["budget"]].append(r)
                bs = sorted(by_b)
                if not bs:
                    continue
                acc = [100 * np.mean([r["accuracy"] for r in by_b[b]]) for b in bs]
                lo = [100 * np.mean([r["ci_low"] for r in by_b[b]]) for b in bs]
                hi = [100 * np.mean([r["ci_high"] for r in by_b[b]]) for b in bs]
                toks = [np.mean([r["mean_thinking_tokens"] for r in by_b[b]]) for b in bs]
                if not manifests.get(v):  # the dense variant (no manifest), whatever its name
                    dense_tokens = toks
                if x_key == "budget":
                    xs = bs
                elif x_key == "mean_thinking_tokens":
                    xs = toks
                else:
                    active, _ = _params(manifests.get(v, {}), None)
                    ref = dense_tokens or toks
                    xs = [(active or 1.0) * (t + 1) / (max(ref) + 1) for t in toks]
                dense = not manifests.get(v)
                style = "-" if dense else "--" if manifests[v].get("kind") == "structured" else "-."
                ax.plot(xs, acc, style, marker="o", ms=3, label=v, lw=2.2 if dense else 1.2)
                if x_key == "budget":
                    ax.fill_between(xs, lo, hi, alpha=0.12)
            ax.set_title(bench)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        for suffix in (".png", ".svg"):
            fig.savefig(out / f"{name}{suffix}", bbox_inches="tight")
        plt.close(fig)
        made[name] = out / f"{name}.png"
    return made


@dataclass
class Section:
    """One report section: a title, a paragraph and a table, rendered to Markdown and HTML alike."""

    title: str
    text: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.text:
            lines += [self.text, ""]
        if self.rows:
            lines += ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        text = f"<p>{esc(self.text)}</p>" if self.text else ""
        if not self.rows:
            return f"<h2>{esc(self.title)}</h2>{text}"
        head = "".join(f"<th>{esc(c)}</th>" for c in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<h2>{esc(self.title)}</h2>{text}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct_ci(value: float, low: float, high: float, signed: bool = False) -> str:
    v = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{v} [{100 * low:.1f}, {100 * high:.1f}]"


def _p(p: float) -> str:
    return "–" if p != p else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _accuracy_sections(bench: str, rows: list[dict], ev: dict) -> list[Section]:
    """Accuracy per variant and budget, pooled over seeds; the paired difference to dense with raw and
    Holm p-values; and what this run could detect."""
    rs = [r for r in rows if r["benchmark"] == bench]
    budgets = sorted({r["budget"] for r in rs})
    variants = list(dict.fromkeys(r["variant"] for r in rs))
    cell = {(r["variant"], r["budget"]): r for r in rs}
    acc_rows = [[v, *(_pct_ci(cell[v, b]["accuracy"], cell[v, b]["ci_low"], cell[v, b]["ci_high"])
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
            delta = _pct_ci(r["delta"], r["delta_low"], r["delta_high"], signed=True)
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
        "intervals allow either), not tested (no variants).",
        ["claim", "benchmark", "verdict", "evidence"],
        [[f"({c.key}) {c.statement}", c.benchmark, c.verdict, c.evidence] for c in claims])


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
    plots = _plots(out, rows, manifests, benches, variants)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    notices_section, _ = _notices_section(out, index)
    sections: list[Section] = [notices_section]
    for bench in benches:
        sections += _accuracy_sections(bench, rows, ev)
    sections.append(_claims_section(rows, samples))
    # pruning table
    body = []
    for v in variants:
        m = manifests.get(v, {})
        body.append([
            v,
            m.get("kind", "dense"),
            m.get("method", "–"),
            str(m.get("allocation") or "–"),
            m.get("regime") or "–",
            f"{m.get('target_sparsity') or 0:.3f}",
            f"{m.get('realised_sparsity', 0):.4f}",
            f"{m.get('removed_param_fraction', 0):.4f}",
            ",".join(map(str, m.get("removed_layers", []))) or "–",
        ])
    sections.append(Section(
        "Pruning",
        "Realised sparsity is measured from the saved weights (structured: share of block parameters removed); "
        "removed fraction is of all parameters. Regime: where the pruning statistics came from — sequential "
        "(each block calibrated on the outputs of the already-pruned blocks), dense-activations (the dense "
        "model, one shared pass), data-free (magnitude).",
        ["variant", "kind", "method", "allocation", "regime", "target", "realised", "removed frac.",
         "removed layers"], body))
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
                                 ", ".join(f"{k} {_pct_ci(b[k], *b[k + '_ci95'])}" for k in keys)])
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
