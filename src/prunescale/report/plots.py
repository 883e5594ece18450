"""Plots of test-time scaling curves (PNG and SVG, written side by side)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def budget_curves(
    curves: Mapping[str, Sequence[Mapping]], path: Path, title: str = "Accuracy vs thinking budget"
) -> list[Path]:
    """One line per variant with its shaded 95 % CI; points are {budget, accuracy, ci95: [lo, hi]}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, points in curves.items():
        xs = [p["budget"] for p in points]
        ax.plot(xs, [100 * p["accuracy"] for p in points], marker="o", label=name)
        ax.fill_between(xs, [100 * p["ci95"][0] for p in points], [100 * p["ci95"][1] for p in points], alpha=0.2)
    ax.set_xlabel("thinking budget (tokens)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        fig.savefig(target)
        written.append(target)
    plt.close(fig)
    return written
