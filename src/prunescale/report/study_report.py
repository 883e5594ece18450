"""The study report: ``report.md`` and a self-contained ``report.html`` (plots embedded), PNG + SVG plots.

Everything is computed locally from the study folder: the TTS curves with 95 % CIs, accuracy vs the
thinking tokens actually used and vs estimated inference FLOPs, paired tests against dense, the
pruning table, parallel-scaling metrics when several samples were drawn, and a reasoning-trace panel.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from prunescale.errors import PrunescaleError


def _load(out: Path) -> tuple[dict, list[dict], dict[str, dict], dict[tuple[str, str], list[dict]]]:
    from prunescale.study.runner import FLOAT_COLUMNS, INT_COLUMNS, plan
    from prunescale.study.spec import StudySpec
    from prunescale.tts.run import read_samples

    meta_path = out / "study.json"
    if not meta_path.exists() or not (out / "results.csv").exists():
        raise PrunescaleError(f"{out} is not a finished study folder (no study.json / results.csv)")
    meta = json.loads(meta_path.read_text())
    spec = StudySpec(**meta["spec"])
    with (out / "results.csv").open() as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    for r in rows:
        for k in FLOAT_COLUMNS:
            r[k] = float(r[k])
        for k in INT_COLUMNS:
            r[k] = int(r[k])
    manifests: dict[str, dict] = {}
    samples: dict[tuple[str, str], list[dict]] = {}
    for stage in plan(spec, out):
        if stage.prune_dir is not None and (stage.prune_dir / "pruning_manifest.json").exists():
            manifests[stage.variant.name] = json.loads((stage.prune_dir / "pruning_manifest.json").read_text())
        for bench, folder in stage.evals:
            samples[(stage.variant.name, bench)] = read_samples(folder / "samples.jsonl")
    return meta, rows, manifests, samples


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


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def write_report(out: Path) -> Path:
    """Write report.md, report.html and the plots into the study folder ``out``."""
    out = Path(out)
    meta, rows, manifests, samples = _load(out)
    spec = meta["spec"]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    plots = _plots(out, rows, manifests, benches, variants)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    sections: list[tuple[str, str]] = []
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
        sections.append(
            (
                f"Accuracy on {bench} ({spec['eval']['split']} split) by thinking budget",
                "Accuracy % [95 % bootstrap CI over items]; Δ vs dense in points with a paired sign-flip "
                "permutation p-value on the same items.\n\n"
                + _md_table(["variant", *[f"B={b}" for b in budgets]], body),
            )
        )
    # pruning table
    body = []
    for v in variants:
        m = manifests.get(v, {})
        body.append(
            [
                v,
                m.get("kind", "dense"),
                m.get("method", "–"),
                str(m.get("allocation") or "–"),
                f"{m.get('target_sparsity') or 0:.3f}",
                f"{m.get('realised_sparsity', 0):.4f}",
                f"{m.get('removed_param_fraction', 0):.4f}",
                ",".join(map(str, m.get("removed_layers", []))) or "–",
            ]
        )
    sections.append(
        (
            "Pruning",
            "Realised sparsity is measured from the saved weights (structured: share of block "
            "parameters removed); removed fraction is of all parameters.\n\n"
            + _md_table(
                ["variant", "kind", "method", "allocation", "target", "realised", "removed frac.", "removed layers"],
                body,
            ),
        )
    )
    # parallel scaling
    if spec["eval"]["samples"] > 1:
        from prunescale.study.runner import plan as _plan
        from prunescale.study.spec import StudySpec

        body = []
        for stage in _plan(StudySpec(**spec), out):
            for bench, folder in stage.evals:
                summ = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else {}
                for b in summ.get("budgets", []):
                    keys = sorted(k for k in b if "@" in k)
                    body.append(
                        [stage.variant.name, bench, str(b["budget"]), ", ".join(f"{k} {pct(b[k])}" for k in keys)]
                    )
        sections.append(
            (
                "Parallel scaling (maj@k, pass@k, cov@k)",
                _md_table(["variant", "benchmark", "budget", "metrics %"], body),
            )
        )
    # reasoning traces
    body = []
    for (v, bench), rs in samples.items():
        t = trace_panel(rs)
        if t:
            body.append(
                [
                    v,
                    bench,
                    str(t["budget"]),
                    f"{t['mean_thinking_tokens']:.1f}",
                    pct(t["truncation_rate"]),
                    f"{t['wait_per_trace']:.2f}",
                    f"{t['self_check_per_trace']:.2f}",
                    pct(t["repetition_rate"]),
                    pct(t["no_answer_rate"]),
                ]
            )
    sections.append(
        (
            "Reasoning traces (largest budget)",
            _md_table(
                [
                    "variant",
                    "benchmark",
                    "budget",
                    "mean thinking",
                    "truncated %",
                    "Wait / trace",
                    "self-checks / trace",
                    "repeated lines %",
                    "no answer %",
                ],
                body,
            ),
        )
    )
    intro = (
        f"Model `{spec['model']}`; {len(variants)} variants; benchmarks {', '.join(benches)} "
        f"({spec['eval']['split']} split; tuned knobs, if any, on the {spec['tuning_split']} split); seeds "
        f"{spec['eval']['seeds']}; {spec['eval']['samples']} sample(s) per item; temperature "
        f"{spec['eval']['temperature']}. FLOPs are estimated as parameters a token passes through × tokens: "
        "layer removal really saves them; unstructured zeros only save them with sparse kernels, so those "
        "variants are plotted at dense cost."
    )
    md = [
        f"# Study `{meta['name']}`",
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
    for title, body_md in sections:
        md += [f"## {title}", "", body_md, ""]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(_html(meta["name"], intro, sections, plots))
    return out / "report.md"


def _md_to_html_table(md: str) -> str:
    parts, table = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            parts.append(_render_table(table))
            table = []
        if line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    if table:
        parts.append(_render_table(table))
    return "\n".join(parts)


def _render_table(lines: list[str]) -> str:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-")]
    head, *body = cells
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join(out) + "</tbody></table>"


def _html(name: str, intro: str, sections: list[tuple[str, str]], plots: dict[str, Path]) -> str:
    imgs = "".join(
        f'<figure><img alt="{k}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{k.replace('_', ' ')}</figcaption></figure>"
        for k, p in plots.items()
    )
    body = "".join(f"<h2>{html.escape(t)}</h2>{_md_to_html_table(b)}" for t, b in sections)
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
