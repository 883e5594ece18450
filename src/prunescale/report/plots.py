"""The report's accuracy plots (TTS curves, accuracy vs thinking tokens used, vs estimated FLOPs), PNG and
SVG, one panel per benchmark; matplotlib is imported only when a report is drawn."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np


def _params(manifest: dict, dense_params: int | None) -> tuple[float | None, float | None]:
    """(parameters a token passes through, nonzero parameters) relative to dense."""
    if not manifest:
        return 1.0, 1.0
    removed = manifest.get("removed_param_fraction", 0.0)
    if manifest.get("kind") == "structured":
        return 1 - removed, 1 - removed
    return 1.0, 1 - removed


def accuracy_plots(out: Path, rows: list[dict], manifests: dict, benches: list[str],
                   variants: list[str]) -> dict[str, Path]:
    """Accuracy vs budget (with 95 % bands), vs mean thinking tokens used and vs relative FLOPs; dense (the
    variant without a manifest) drawn first and thickest."""
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
