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


def _load(out: Path) -> tuple[dict, list[dict], dict[str, dict], dict[tuple[str, str], list[dict]]]:
    """The study's index, its results table, each variant's manifest and each run's samples: every folder
    comes from the index the runner wrote, never from re-planning the study."""
    from prunescale.study.results import manifest, read_index, read_results
    from prunescale.tts.run import read_samples

    index = read_index(out)
    rows = read_results(out)
    manifests = {v["name"]: m for v in index["variants"] if (m := manifest(out, v))}
    samples = {(v["name"], ev["benchmark"]): read_samples(out / ev["folder"] / "samples.jsonl")
               for v in index["variants"] for ev in v["evals"]}
    return index, rows, manifests, samples


def paired_test(a: dict[str, float], b: dict[str, float], n_perm: int = 10000, seed: int = 0) -> tuple[float, float]:
    """(mean difference a − b, two-sided sign-flip permutation p-value) over the items both have."""
    items = sorted(set(a) & set(b))
    d = np.array([a[i] - b[i] for i in items])
    if d.size == 0:
        return float("nan"), float("nan")
    observed = abs(d.mean())
    if observed == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs((signs * d).mean(axis=1))
    return float(d.mean()), float((1 + (null >= observed - 1e-12).sum()) / (n_perm + 1))


def _per_item(rows: list[dict], budget: int) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["budget"] == budget:
            acc[r["item_id"]].append(float(r["correct"]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


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
    import matplotlib

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
            for v in variants:
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
                if v == "dense":
                    dense_tokens = toks
                if x_key == "budget":
                    xs = bs
                elif x_key == "mean_thinking_tokens":
                    xs = toks
                else:
                    active, _ = _params(manifests.get(v, {}), None)
                    ref = dense_tokens or toks
                    xs = [(active or 1.0) * (t + 1) / (max(ref) + 1) for t in toks]
                style = "-" if v == "dense" else "--" if manifests.get(v, {}).get("kind") == "structured" else "-."
                ax.plot(xs, acc, style, marker="o", ms=3, label=v, lw=2.2 if v == "dense" else 1.2)
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
        lines += ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        text = f"<p>{esc(self.text)}</p>" if self.text else ""
        return f"<h2>{esc(self.title)}</h2>{text}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out: Path) -> Path:
    """Write report.md, report.html and the plots into the study folder ``out``."""
    out = Path(out)
    index, rows, manifests, samples = _load(out)
    ev = index["eval"]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    plots = _plots(out, rows, manifests, benches, variants)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    sections: list[Section] = []
    # main table: accuracy per budget with CIs, Δ vs dense and paired p-values
    for bench in benches:
        budgets = sorted({r["budget"] for r in rows if r["benchmark"] == bench})
        body = []
        dense_rows = samples.get(("dense", bench), [])
        for v in variants:
            cells = [v]
            for b in budgets:
                rs = [r for r in rows if r["variant"] == v and r["benchmark"] == bench and r["budget"] == b]
                if not rs:
                    cells.append("–")
                    continue
                acc = np.mean([r["accuracy"] for r in rs])
                lo, hi = np.mean([r["ci_low"] for r in rs]), np.mean([r["ci_high"] for r in rs])
                cell = f"{pct(acc)} [{pct(lo)}, {pct(hi)}]"
                if v != "dense" and dense_rows:
                    delta, p = paired_test(_per_item(samples[(v, bench)], b), _per_item(dense_rows, b))
                    cell += f" Δ{100 * delta:+.1f} p={p:.3f}"
                cells.append(cell)
            body.append(cells)
        sections.append(Section(
            f"Accuracy on {bench} ({ev['split']} split) by thinking budget",
            "Accuracy % [95 % bootstrap CI over items]; Δ vs dense in points with a paired sign-flip "
            "permutation p-value on the same items.",
            ["variant", *[f"B={b}" for b in budgets]], body))
    # pruning table
    body = []
    for v in variants:
        m = manifests.get(v, {})
        body.append([
            v,
            m.get("kind", "dense"),
            m.get("method", "–"),
            str(m.get("allocation") or "–"),
            f"{m.get('target_sparsity') or 0:.3f}",
            f"{m.get('realised_sparsity', 0):.4f}",
            f"{m.get('removed_param_fraction', 0):.4f}",
            ",".join(map(str, m.get("removed_layers", []))) or "–",
        ])
    sections.append(Section(
        "Pruning",
        "Realised sparsity is measured from the saved weights (structured: share of block parameters removed); "
        "removed fraction is of all parameters.",
        ["variant", "kind", "method", "allocation", "target", "realised", "removed frac.", "removed layers"], body))
    # parallel scaling
    if ev["samples"] > 1:
        body = []
        for v in index["variants"]:
            for run in v["evals"]:
                path = out / run["folder"] / "summary.json"
                summ = json.loads(path.read_text()) if path.exists() else {}
                for b in summ.get("budgets", []):
                    keys = sorted(k for k in b if "@" in k)
                    body.append([v["name"], run["benchmark"], str(b["budget"]),
                                 ", ".join(f"{k} {pct(b[k])}" for k in keys)])
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
