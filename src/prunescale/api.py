"""The Python API that the CLI mirrors. Each function takes plain, typed arguments and writes files."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from prunescale.errors import PrunescaleError
from prunescale.provenance import environment


def list_models() -> list[dict]:
    """The named models with ``name``, ``path`` (None when absent), ``params``, ``source``."""
    from prunescale.models.registry import REGISTRY, describe

    return [describe(m) for m in REGISTRY.values()]


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Check ``out`` can be written and return a fresh temp folder beside it.

    Results are written into the temp folder and moved into place by :func:`commit_out`, so a failure
    half-way never leaves a half-written ``out`` (and never touches an existing one).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PrunescaleError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PrunescaleError(f"--out {out} is not empty; pass --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise PrunescaleError(f"cannot write to {out.parent}: {exc.strerror}") from exc


def commit_out(tmp: Path, out: Path) -> None:
    """Move a finished temp folder into place (replacing ``out`` if the caller allowed it)."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def demo(
    out: Path,
    limit: int = 500,
    hard: int = 200,
    seed: int = 0,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Accuracy-vs-budget report of the embedded tiny reasoner; returns the path of ``report.md``."""
    from prunescale.models.loader import load_model
    from prunescale.report.plots import budget_curves
    from prunescale.toy.behaviour import measure

    out = Path(out)
    tmp = prepare_out(out, overwrite)
    try:
        lm = load_model("tiny-reasoner", dtype="fp32")
        result = measure(lm.model, lm.tokenizer, n=limit, hard_n=hard, seed=seed, log=log)
        result["environment"] = environment()
        (tmp / "summary.json").write_text(json.dumps(result, indent=1))
        budget_curves({"tiny-reasoner (dense)": result["curve"]}, tmp / "tts_curve", "tiny-reasoner")
        (tmp / "report.md").write_text(demo_markdown(result))
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "report.md"


def demo_markdown(r: dict) -> str:
    """The demo's report as Markdown (tables of the numbers in summary.json)."""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        "# prunescale demo: tiny reasoner, accuracy vs thinking budget",
        "",
        f"{r['items']} test items (seed {r['seed']}), greedy decoding, budget forcing by truncation: the thinking",
        "is cut after B tokens, `</think>` is forced and the model answers. 95 % bootstrap CIs over items.",
        "",
        "![accuracy vs budget](tts_curve.png)",
        "",
        "| budget (tokens) | accuracy % | 95 % CI | mean thinking tokens | forced end % |",
        "|---:|---:|---|---:|---:|",
    ]
    for p in r["curve"]:
        lines.append(
            f"| {p['budget']} | {pct(p['accuracy'])} | {pct(p['ci95'][0])}–{pct(p['ci95'][1])} "
            f"| {p['mean_think_tokens']} | {pct(p['forced_end_rate'])} |"
        )
    f, w, h = r["full"], r["forced_wait"], r["hard"]
    lines += [
        f"| full | {pct(f['accuracy'])} | {pct(f['ci95'][0])}–{pct(f['ci95'][1])} | {f['mean_think_tokens']} "
        f"| {pct(f['forced_end_rate'])} |",
        "",
        f"- Answer prior (always the most frequent answer per task): {pct(r['answer_prior'])} %.",
        f"- One forced \"Wait\" after the natural end: {pct(w['accuracy'])} % "
        f"({w['answers_changed']} answers changed, +{w['extra_tokens']} tokens on average).",
        f"- Hard split (k = {h['k_range'][0]}–{h['k_range'][1]} steps, beyond training): {pct(h['accuracy'])} % "
        f"on {h['items']} items.",
        "- Full-thinking accuracy by steps k: "
        + ", ".join(f"k={k}: {pct(v)}" for k, v in f["by_k"].items()),
        f"- Time: {r['seconds']['all']} s ({r['environment']['torch']} on {r['environment']['device']}).",
        "",
    ]
    return "\n".join(lines)
