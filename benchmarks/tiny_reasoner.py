"""Behaviour of the tiny reasoner, and the speed of the prefix-reuse budget sweep.

Measures on ≥ 500 in-distribution test items (greedy, the eval's budget sweep): the accuracy-vs-
budget curve, full-thinking accuracy, one forced "Wait", and the hard split. Then, on a subset, runs
*literal* budget forcing (one capped generation per budget) as the same-run baseline: it must give
identical accuracies, and the ratio sweep/literal is the speed figure.

    python benchmarks/tiny_reasoner.py [--model tiny-reasoner] [--items 500] [--write-behaviour]
    python benchmarks/tiny_reasoner.py --quick   # 24 items of each kind (CI)

Prints a readable summary on stderr and ends with one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from prunescale.models.loader import load_model
from prunescale.provenance import environment
from prunescale.toy.behaviour import DEFAULT_BUDGETS, measure
from prunescale.toy.evaluate import solve
from prunescale.toy.tasks import sample_problems


def literal_vs_sweep(model, tok, items: int, seed: int) -> dict:
    """Same items, the sweep against one capped generation per budget (greedy): every sample must be the
    same (thinking length, forced end, answer), not only the count of correct answers."""
    problems = sample_problems("test", items, seed=seed)
    budgets = list(DEFAULT_BUDGETS)
    t0 = time.perf_counter()
    _, sweep = solve(model, tok, problems, budgets)
    t_sweep = time.perf_counter() - t0
    t0 = time.perf_counter()
    literal = {b: solve(model, tok, problems, [b])[1][b] for b in budgets}
    t_literal = time.perf_counter() - t0
    key = lambda graded: [(g.think_tokens, g.forced_end, g.answer) for g in graded]  # noqa: E731
    differing = sum(a != b for bud in budgets for a, b in zip(key(sweep[bud]), key(literal[bud])))
    return {
        "items": items,
        "identical": differing == 0,
        "differing_samples": differing,
        "sweep_correct": {b: sum(g.correct for g in sweep[b]) for b in budgets},
        "literal_correct": {b: sum(g.correct for g in literal[b]) for b in budgets},
        "sweep_seconds": round(t_sweep, 2),
        "literal_seconds": round(t_literal, 2),
        "sweep_over_literal_time": round(t_sweep / t_literal, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-reasoner")
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--hard-items", type=int, default=200)
    ap.add_argument("--literal-items", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-behaviour", action="store_true", help="save behaviour.json beside the weights")
    ap.add_argument("--quick", action="store_true", help="24 items of each kind (CI)")
    args = ap.parse_args()
    if args.quick:
        if args.write_behaviour:
            sys.exit("--quick measures too few items to write behaviour.json")
        args.items = args.hard_items = args.literal_items = 24
    lm = load_model(args.model, dtype="fp32")
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    result = measure(lm.model, lm.tokenizer, n=args.items, hard_n=args.hard_items, seed=args.seed, log=log)
    result["literal_check"] = literal_vs_sweep(lm.model, lm.tokenizer, args.literal_items, args.seed + 1)
    result["environment"] = environment()
    for p in result["curve"]:
        print(f"budget {p['budget']:>4}: {100 * p['accuracy']:5.1f} %  CI {100 * p['ci95'][0]:.1f}-"
              f"{100 * p['ci95'][1]:.1f}  mean think {p['mean_think_tokens']}", file=sys.stderr)
    f, w, h = result["full"], result["forced_wait"], result["hard"]
    print(f"full: {100 * f['accuracy']:.1f} %  forced Wait: {100 * w['accuracy']:.1f} %  "
          f"hard: {100 * h['accuracy']:.1f} %  prior: {100 * result['answer_prior']:.1f} %", file=sys.stderr)
    if args.write_behaviour:
        from pathlib import Path

        (Path(lm.ref.location) / "behaviour.json").write_text(json.dumps(result, indent=1) + "\n")
    lc = result["literal_check"]
    print(json.dumps({
        "benchmark": "tiny_reasoner",
        "items": args.items,
        "curve": {str(p["budget"]): p["accuracy"] for p in result["curve"]},
        "full_accuracy": f["accuracy"],
        "forced_wait_accuracy": w["accuracy"],
        "hard_accuracy": h["accuracy"],
        "answer_prior": result["answer_prior"],
        "literal_identical": lc["identical"],
        "sweep_seconds": lc["sweep_seconds"],
        "literal_seconds": lc["literal_seconds"],
        "sweep_over_literal_time": lc["sweep_over_literal_time"],
    }))


if __name__ == "__main__":
    main()
