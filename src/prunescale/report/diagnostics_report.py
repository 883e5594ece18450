"""The report's Diagnostics section, ``diagnostics.csv`` and ``diagnostics.png``/``.svg`` (the numbers are
:mod:`prunescale.report.diagnostics`'). Always present: where a quantity cannot be computed the section
says so in a "None: …" line instead of leaving a reader to wonder whether it was forgotten.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

from prunescale.report.diagnostics import COLUMNS, MathEquivalence, diagnose
from prunescale.report.sections import Section, pct_ci

CSV, PLOT = "diagnostics.csv", "diagnostics"

TEXT = (
    "Computed from each evaluation's samples.jsonl (docs/METHODS.md, Diagnostics). *Thinking vs dense*: per item, the "
    "mean thinking tokens over its seeds and samples under the variant minus under dense, on the items both "
    "have; the mean difference in tokens with a paired t interval (95 %), and the ratio of the two means. "
    "*Found-then-lost*: among the wrong samples (no answer included), the share whose thinking already held "
    "the gold answer — candidates read from the thinking in the forms the grader reads (boxed, answer "
    "phrases, inline math, numbers; for multiple choice the strict letter forms; for the tiny reasoner the "
    "state its last step line reached) and each compared with the gold by the grader's own equality "
    "(Math-Verify for math, never a substring test). Items are the unit: each item's share among its wrong "
    "samples, Wilson's interval at the design-effect n (95 %), as the accuracy tables; lost / wrong counts "
    "samples. A small integer gold can appear in a thinking by chance (a step number), so for such items "
    "the rate is an upper bound."
)


def _num(x: float, fmt: str = "{:.1f}") -> str:
    return "–" if x != x else fmt.format(x)


def _table_rows(rows: list[dict], dense: str | None) -> list[list[str]]:
    out = []
    for r in rows:
        if r["variant"] == dense or r["thinking_delta"] != r["thinking_delta"]:
            delta = "(dense)" if r["variant"] == dense else "–"
        elif r["thinking_low"] != r["thinking_low"]:
            delta = f"{r['thinking_delta']:+.1f}"
        else:
            delta = f"{r['thinking_delta']:+.1f} [{r['thinking_low']:.1f}, {r['thinking_high']:.1f}]"
        lost = "–" if r["wrong"] == 0 else pct_ci(r["lost_rate"], r["lost_low"], r["lost_high"])
        out.append([r["variant"], str(r["budget"]), _num(r["thinking_tokens"]), delta,
                    _num(r["thinking_ratio"], "{:.2f}"), lost, f"{r['lost']} / {r['wrong']}"])
    return out


def _sections(rows: list[dict], dense: str | None) -> list[Section]:
    lines = [TEXT]
    if not rows:
        lines.append("None: the study has no evaluation samples, so neither diagnostic can be computed.")
    elif dense is None:
        lines.append("Thinking vs dense — None: the study has no dense variant to compare with (the "
                     "found-then-lost rate needs none and is shown).")
    out = [Section("Diagnostics", " ".join(lines), [], [])]
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        rs = [r for r in rows if r["benchmark"] == bench]
        notes = [f"Answers read as {rs[0]['answer_kind']}."]
        if not any(r["wrong"] for r in rs):
            notes.append(f"Found-then-lost — None: no sample of {bench} was wrong.")
        if dense is not None and not any(r["variant"] == dense for r in rs):
            notes.append(f"Thinking vs dense — None: dense was not evaluated on {bench}.")
        out.append(Section(f"Diagnostics on {bench}", " ".join(notes),
                           ["variant", "budget", "thinking tokens", "Δ vs dense, tokens [95 %]", "ratio",
                            "found-then-lost % [95 %]", "lost / wrong"], _table_rows(rs, dense), level=3))
    return out


def write_csv(out: Path, rows: list[dict]) -> Path:
    """``diagnostics.csv``: every number the section shows (and the interval bounds it rounds), one row per
    variant × benchmark × budget, so a reader can re-plot or test them without parsing Markdown."""
    path = Path(out) / CSV
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    return path


def plot(out: Path, rows: list[dict], dense: str | None) -> Path | None:
    """Both diagnostics against the budget, one line per variant: thinking Δ vs dense (top), found-then-lost
    rate (bottom), one column per benchmark, each point with its interval."""
    if not rows:
        return None
    import matplotlib  # heavy: only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    # one colour per variant in every panel: tab20's strong shades first, then their light partners
    colour = {v: plt.cm.tab20.colors[(2 * i) % 20 + (2 * i // 20) % 2] for i, v in enumerate(names)}
    fig, axes = plt.subplots(2, len(benches), figsize=(6 * len(benches), 7.5), dpi=110, squeeze=False)
    for col, bench in enumerate(benches):
        top, bottom = axes[0][col], axes[1][col]
        for v in dict.fromkeys(r["variant"] for r in rows if r["benchmark"] == bench):
            rs = [r for r in rows if r["benchmark"] == bench and r["variant"] == v]
            style = dict(marker="o", ms=3, capsize=2, lw=2.2 if v == dense else 1.2, label=v, color=colour[v])
            _errorbar(top, rs, "thinking_delta", "thinking_low", "thinking_high", 1.0, style)
            _errorbar(bottom, rs, "lost_rate", "lost_low", "lost_high", 100.0, style)
        top.axhline(0, color="grey", lw=0.8)
        top.set_title(bench)
        top.set_ylabel("thinking tokens − dense's (same items)")
        bottom.set_ylabel("found-then-lost (% of wrong)")
        bottom.set_ylim(-2, 102)
        for ax in (top, bottom):
            ax.set_xlabel("thinking budget (tokens)")
            ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour[v], marker="o", ms=3, lw=2.2 if v == dense else 1.2, label=v) for v in names]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(Path(out) / f"{PLOT}{suffix}", bbox_inches="tight")
    plt.close(fig)
    return Path(out) / f"{PLOT}.png"


def _errorbar(ax, rs: list[dict], key: str, lo: str, hi: str, scale: float, style: dict) -> None:
    pts = [r for r in rs if r[key] == r[key]]
    if not pts:
        return
    ys = [scale * r[key] for r in pts]
    # clipped at 0: Wilson's bound can sit a rounding error inside a point estimate of exactly 0 or 1
    err = [[0.0 if math.isnan(r[lo]) else max(0.0, scale * (r[key] - r[lo])) for r in pts],
           [0.0 if math.isnan(r[hi]) else max(0.0, scale * (r[hi] - r[key])) for r in pts]]
    ax.errorbar([r["budget"] for r in pts], ys, yerr=err, **style)


def diagnostics(out: Path, samples: Mapping[tuple[str, str], list[dict]], dense: str | None,
                grade_timeout: float = 5.0, kinds: Mapping[str, str] | None = None
                ) -> tuple[list[Section], Path | None]:
    """Compute both diagnostics, write ``diagnostics.csv`` and the plot into ``out``; return the report's
    sections and the plot (None without samples). Math candidates are judged by Math-Verify in the
    grader's worker pool, started only when a math benchmark has a wrong sample to read. ``kinds``: each
    benchmark's item kind as the study recorded it (index.json)."""
    equal = MathEquivalence(workers=max(1, min(4, (os.cpu_count() or 2) - 1)), timeout=grade_timeout)
    try:
        rows = diagnose(samples, dense, equal, kinds)
    finally:
        equal.close()
    write_csv(out, rows)
    return _sections(rows, dense), plot(out, rows, dense)
