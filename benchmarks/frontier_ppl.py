"""The methods frontier on a real model: held-out perplexity of every method and allocation, side by side.

SmolLM2-135M (fp32, dequantised from its GGUF), calibrated once on 128 × 512 tokens of GSM8K train text;
held-out perplexity on 64 × 512-token windows of the GSM8K test split (as ``prunescale ppl --data gsm8k``).
At each sparsity: magnitude, Wanda, SparseGPT, RIA (per row; per matrix as its reference code),
Wanda+DSnoT and SparseGPT+DSnoT (MLP left alone, the reference default; and every Linear refined), all
uniform, and Wanda with OWL, AlphaPruning, DLP and ATP — every knob at its default (none tuned: a tuned
knob would need a validation split and more runs). Each variant prunes a fresh copy of the same dense
model with the same calibration tokens and goes through the same audit as ``prunescale prune``; the
times are each run's pruning seconds (allocation included) on this machine, for ratios within the run.

    python benchmarks/frontier_ppl.py [--sparsities 0.5,0.7] [--only "wanda;ria per matrix"] [--out runs/f.json]
    python benchmarks/frontier_ppl.py --quick   # every variant on the tiny reasoner, 8 × 64 tokens (CI)

Prints a Markdown table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

VARIANTS = [  # (label, method, allocation, other options)
    ("magnitude", "magnitude", "uniform", {}),
    ("wanda", "wanda", "uniform", {}),
    ("sparsegpt", "sparsegpt", "uniform", {}),
    ("ria", "ria", "uniform", {}),
    ("ria per matrix", "ria", "uniform", {"group": "matrix"}),
    ("wanda+dsnot", "wanda+dsnot", "uniform", {}),
    ("wanda+dsnot every Linear", "wanda+dsnot", "uniform", {"dsnot_skip": "none"}),
    ("sparsegpt+dsnot", "sparsegpt+dsnot", "uniform", {}),
    ("sparsegpt+dsnot every Linear", "sparsegpt+dsnot", "uniform", {"dsnot_skip": "none"}),
    ("wanda owl", "wanda", "owl", {}),
    ("wanda alpha", "wanda", "alpha", {}),
    ("wanda dlp", "wanda", "dlp", {}),
    ("wanda atp", "wanda", "atp", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--sparsities", default="0.5,0.7")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--only", default=None, help="labels to run, separated by ';' (default: all)")
    ap.add_argument("--data", default="gsm8k", help="calibration (train split) and held-out (test split) source")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here (rewritten after each run)")
    ap.add_argument("--quick", action="store_true", help="the tiny reasoner, 8 × 64 tokens, 50 %% only (CI)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.data, args.sparsities, args.nsamples, args.seqlen, args.windows = \
            "tiny-reasoner", "tiny", "0.5", 8, 64, 4

    import torch

    from prunescale import plugins
    from prunescale.api import apply_spec
    from prunescale.config import PruneSpec
    from prunescale.data.calibration import load_calibration
    from prunescale.eval.perplexity import perplexity
    from prunescale.models.loader import load_model

    plugins.load()  # the tiny reasoner's source is a plugin's
    torch.manual_seed(0)
    lm = load_model(args.model, dtype="fp32")
    calib = load_calibration(args.data, lm.tokenizer, args.nsamples, args.seqlen, 0, "train", lm.model,
                             model_name=args.model)
    held = load_calibration(args.data, lm.tokenizer, args.windows, args.seqlen, 0, "test", lm.model, allow_test=True,
                            model_name=args.model)
    rows: list[dict] = [{"variant": "dense", "sparsity": 0.0, "perplexity": perplexity(lm.model, held.samples)[
        "perplexity"]}]
    print(f"dense: {rows[0]['perplexity']:.3f}", file=sys.stderr)
    only = set(args.only.split(";")) if args.only else None
    for s in (float(x) for x in args.sparsities.split(",")):
        for label, method, allocation, options in VARIANTS:
            if only and label not in only:
                continue
            spec = PruneSpec(model=args.model, method=method, sparsity=s, allocation=allocation, out="unused",
                             calibration={"source": args.data, "nsamples": args.nsamples, "seqlen": args.seqlen},
                             **options)
            model = copy.deepcopy(lm.model)
            t0 = time.perf_counter()
            done = apply_spec(spec, type(lm)(model, lm.tokenizer, lm.ref), calib)  # exactly as `prune` does
            alloc, result = done.allocation, done.result
            seconds = time.perf_counter() - t0
            row = {"variant": label, "sparsity": s, "perplexity": perplexity(model, held.samples)["perplexity"],
                   "realised": round(result["realised_global"], 4), "prune_seconds": round(seconds, 1),
                   "per_block": [round(x, 4) for x in alloc.per_block],
                   **({"dsnot_swaps": result["run"]["dsnot_swaps"]} if "dsnot_swaps" in result["run"] else {})}
            rows.append(row)
            print(f"{label} {s:.0%}: ppl {row['perplexity']:.3f} ({seconds:.0f} s)", file=sys.stderr)
            del model
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    sparsities = sorted({r["sparsity"] for r in rows if r["sparsity"]})
    lines = ["| variant | " + " | ".join(f"ppl at {s:.0%}" for s in sparsities) + " |",
             "|---|" + "---:|" * len(sparsities), f"| dense | {rows[0]['perplexity']:.2f}" + " |" * len(sparsities)]
    for label, *_ in VARIANTS:
        cells = [next((f"{r['perplexity']:.2f}" for r in rows if r["variant"] == label and r["sparsity"] == s), "–")
                 for s in sparsities]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps({"benchmark": "frontier_ppl", "model": args.model, "calibration": f"{args.data} train "
                      f"{args.nsamples} x {args.seqlen}", "heldout": held.spec, "rows": rows}))


if __name__ == "__main__":
    main()
