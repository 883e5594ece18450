"""Does calibrating on the model's own reasoning traces keep a pruned model better than plain text?

SmolLM2-135M, Wanda 50 % (uniform), calibrated on 128 × 512 tokens of GSM8K train text (`gsm8k`) vs the
dense model's own greedy traces on GSM8K train questions (`traces:gsm8k`); held-out GSM8K perplexity
(test split) and GSM8K test accuracy by thinking budget, beside dense. Every number is measured in this
run; the last line is one JSON object.

    python benchmarks/calibration_sources.py [--items 200] [--budgets 0,128,256] [--out runs/calib-sources]
    python benchmarks/calibration_sources.py --quick   # the same path on the tiny reasoner (tiny vs traces:tiny)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--budgets", default="0,128,256")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--data", default="gsm8k", help="the text source and the benchmark (its traces: the other source)")
    ap.add_argument("--answer-budget", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path("runs/calib-sources"))
    ap.add_argument("--quick", action="store_true", help="the tiny reasoner, 8 × 64 tokens, 8 items (CI)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.data, args.items, args.budgets, args.nsamples, args.seqlen = "tiny-reasoner", "tiny", 8, \
            "0,24", 8, 64
        args.answer_budget = 4

    from prunescale.api import evaluate, ppl, prune
    from prunescale.config import EvalSpec, PruneSpec

    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    models = {"dense": args.model}
    seconds = {}
    for source in (args.data, f"traces:{args.data}"):
        out = args.out / f"wanda50-{source.replace(':', '-')}"
        t0 = time.perf_counter()
        prune(PruneSpec(model=args.model, method="wanda", sparsity=0.5, out=out, overwrite=True,
                        calibration={"source": source, "nsamples": args.nsamples, "seqlen": args.seqlen}),
              log=log, progress=False)
        seconds[source] = round(time.perf_counter() - t0, 1)
        models[source] = str(out)
    rows = {}
    budgets = [int(b) for b in args.budgets.split(",")]
    for name, model in models.items():
        held = ppl(model, args.data, args.seqlen, 8 if args.quick else 64, split="test")
        run = evaluate(EvalSpec(model=model, benchmark=args.data, limit=args.items, budgets=budgets,
                                answer_budget=args.answer_budget, dtype="fp32" if args.quick else "bf16",
                                batch_size=32, out=args.out / f"eval-{name.replace(':', '-')}", overwrite=True),
                       log=log, progress=False)
        summary = json.loads((run / "summary.json").read_text())
        rows[name] = {"test_ppl": round(held["perplexity"], 3),
                      "accuracy": {b["budget"]: [round(100 * b["accuracy"], 1), [round(100 * x, 1) for x in b["ci95"]]]
                                   for b in summary["budgets"]},
                      "no_answer": {b["budget"]: round(100 * b["no_answer_rate"], 1) for b in summary["budgets"]}}
        log(f"{name}: {rows[name]}")
    print(json.dumps({"benchmark": "calibration_sources", "model": args.model, "data": args.data,
                      "calibration": f"{args.nsamples} x {args.seqlen}", "prune_seconds": seconds, "items": args.items,
                      "results": rows}))


if __name__ == "__main__":
    main()
