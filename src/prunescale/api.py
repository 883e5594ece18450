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


def _calibration_for(spec_model: str, source: str | None, seqlen: int | None):
    from prunescale.data.calibration import default_source

    src = source or default_source(spec_model)
    return src, seqlen or (128 if src.split(":")[-1] == "tiny" else 512)


def prune(spec, log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Prune a model as ``spec`` (a :class:`~prunescale.config.PruneSpec`) says; returns the output folder.

    The folder is a normal HF model folder plus ``pruning_manifest.json`` and ``allocation.json``. It is
    written to a temp folder and moved into place only after the realised sparsity has been checked, so
    a failure never leaves a half-written or wrong checkpoint behind.
    """
    import time

    import torch

    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import check_device, check_dtype, load_model
    from prunescale.models.save import save_checkpoint
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    t0 = time.perf_counter()
    check_dtype(spec.dtype)
    check_device(spec.device)
    out = Path(spec.out)
    tmp = prepare_out(out, spec.overwrite)
    try:
        torch.manual_seed(spec.seed)
        lm = load_model(spec.model, dtype=spec.dtype, device="cpu", trust_remote_code=spec.trust_remote_code)
        model, tok = lm.model, lm.tokenizer
        calib = None
        if spec.method != "magnitude":
            source, seqlen = _calibration_for(spec.model, spec.calib, spec.seqlen)
            log(f"calibration: {spec.nsamples} × {seqlen} tokens from {source}")
            calib = load_calibration(source, tok, spec.nsamples, seqlen, spec.seed, "train", model)
        pattern = Pattern(sparsity={} if spec.nm else uniform(model, spec.sparsity), nm=spec.nm_tuple,
                          group=spec.group)
        log(f"pruning {spec.model} with {spec.method} "
            + (f"{spec.nm}" if spec.nm else f"at {spec.sparsity:.0%} ({spec.allocation})"))
        result = prune_model(model, spec.method, pattern, calib.samples if calib else (), device=spec.device,
                             progress=progress, sequential=spec.sequential, blocksize=spec.blocksize,
                             percdamp=spec.percdamp)
        total = sum(p.numel() for p in model.parameters())
        block_params = sum(m["params"] for m in result["per_module"].values())
        zeros = sum(m["zeros"] for m in result["per_module"].values())
        manifest = {
            "base_model": spec.model,
            "base_location": lm.ref.location,
            "kind": "unstructured",
            "method": spec.method,
            "allocation": "n:m" if spec.nm else spec.allocation,
            "nm": spec.nm,
            "comparison_group": spec.group if spec.method == "magnitude" else "row",
            "target_sparsity": result["target_global"],
            "realised_sparsity": result["realised_global"],
            "realised_per_module": {n: round(m["sparsity"], 6) for n, m in result["per_module"].items()},
            "removed_layers": [],
            "removed_param_fraction": zeros / total,
            "removed_param_fraction_prunable": zeros / max(1, block_params),
            "calibration": calib.spec if calib else None,
            "options": {"sequential": spec.sequential, "blocksize": spec.blocksize, "percdamp": spec.percdamp,
                        "device": spec.device, "dtype": spec.dtype},
            "seed": spec.seed,
            "block_forwards": result["run"].get("block_forwards", 0),
            "elapsed_seconds": round(time.perf_counter() - t0, 2),
            "environment": environment(),
        }
        save_checkpoint(model, tok, tmp, manifest)
        if not spec.nm:
            (tmp / "allocation.json").write_text(json.dumps(pattern.sparsity, indent=1) + "\n")
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"realised sparsity {result['realised_global']:.4f} (target {result['target_global']:.4f}) → {out}")
    return out


def ppl(model: str, data: str | None = None, seqlen: int | None = None, limit: int = 64, seed: int = 0,
        split: str = "heldout", dtype: str = "auto", device: str = "cpu") -> dict:
    """Perplexity of a model on held-out windows of a text source (default: the model's embedded one)."""
    from prunescale.data.calibration import load_calibration
    from prunescale.eval.perplexity import perplexity
    from prunescale.models.loader import load_model

    lm = load_model(model, dtype=dtype, device=device)
    source, seqlen = _calibration_for(model, data, seqlen)
    calib = load_calibration(source, lm.tokenizer, limit, seqlen, seed, split, lm.model)
    return {"model": model, **perplexity(lm.model, calib.samples), "data": calib.spec}
