"""Cost of the budget sweep and throughput of the hf engine, each against baselines in the same run.

1. Sweep: a 5-budget sweep with prefix reuse against (a) the largest budget alone and (b) regeneration,
   one capped run per budget as s1's and LPHIS's scripts evaluate (the sum over budgets), each at every
   answer budget asked for (default 4 and 64 tokens: real runs answer in 64, paper.yaml in 512, so a
   4-token answer phase would flatter the sweep). Reported as ratios of wall time, of tokens pushed
   through the model and of forward calls. Sweep and largest-alone runs alternate, back to back; the time
   ratio is the median over those pairs (this machine's speed drifts by up to 30 % within a minute), with
   the ratio of the fastest runs beside it.
2. Engine: useful (generated, kept) tokens per second of the hf engine vs plain ``model.generate`` with
   the same batches on a mixed-length workload (target ≥ 1.5×). Plain generate keeps finished rows in
   the batch until the longest one ends; the engine drops them from the batch and the KV cache.

    python benchmarks/tts_sweep.py [--model tiny-reasoner] [--items 200] [--repeats 3] [--answer-budgets 4,64]
    python benchmarks/tts_sweep.py --model smollm2-135m --dtype bf16 --benchmark gsm8k --items 64
    python benchmarks/tts_sweep.py --quick   # the same measurements on 8 items, once (CI)

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def main() -> None:
    from prunescale import plugins
    from prunescale.api import eos_ids
    from prunescale.models.loader import load_model
    from prunescale.tts.benchmarks import load_benchmark
    from prunescale.tts.engines.base import Request
    from prunescale.tts.engines.hf import HFEngine
    from prunescale.tts.forcing import Markers, Policy, sweep
    from prunescale.tts.prompting import prompt_ids, think_format

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-reasoner")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5, help="alternating sweep / largest-budget pairs (medians)")
    ap.add_argument("--answer-budgets", default="4,64", help="answer-phase tokens, each measured on its own")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--benchmark", default="tiny", help="items: tiny (test split) or gsm8k")
    ap.add_argument("--quick", action="store_true", help="8 items, one repeat (CI)")
    args = ap.parse_args()
    if args.quick:
        args.items, args.repeats, args.batch_size = 8, 1, 8
    plugins.load()  # the tiny reasoner's benchmark is a plugin's
    lm = load_model(args.model, dtype=args.dtype)
    tok = lm.tokenizer
    items = load_benchmark(args.benchmark, "test", args.items, 0)
    fmt = think_format(tok, args.model)
    mk = Markers(tok, fmt, eos_ids(lm.model.generation_config))
    prompts = [prompt_ids(tok, it, fmt) for it in items]
    cues = [fmt.cue(it) for it in items]
    seeds = [None] * len(items)
    budgets = [12, 24, 48, 96, 192]

    def run(bs: list[int], answer: int) -> tuple[float, int, int]:
        engine = HFEngine(lm.model, tok.pad_token_id, args.batch_size)
        policy = Policy(bs, answer_budget=answer)
        t0 = time.perf_counter()
        sweep(engine, mk, prompts, seeds, cues, policy)
        return time.perf_counter() - t0, engine.forward_tokens, engine.forward_calls

    run(budgets[:1], 4)  # warm-up
    by_answer: dict[str, dict] = {}
    for answer in (int(a) for a in args.answer_budgets.split(",")):
        sweeps, largest = [], []
        for _ in range(args.repeats):  # alternated: a busy machine slows one pair, not one side
            sweeps.append(run(budgets, answer))
            largest.append(run(budgets[-1:], answer))
        each = [run([b], answer) for b in budgets]  # regeneration: one capped run per budget
        pairs = [s[0] / m[0] for s, m in zip(sweeps, largest)]
        t_sweep, t_max = statistics.median(s[0] for s in sweeps), statistics.median(m[0] for m in largest)
        t_regen = sum(e[0] for e in each)
        by_answer[str(answer)] = {
            "sweep_seconds": round(t_sweep, 3), "largest_budget_seconds": round(t_max, 3),
            "regeneration_seconds": round(t_regen, 3),
            "sweep_over_largest_time": round(statistics.median(pairs), 3),
            "sweep_over_largest_time_pairs": [round(r, 3) for r in pairs],
            "sweep_over_largest_time_fastest": round(min(s[0] for s in sweeps) / min(m[0] for m in largest), 3),
            "sweep_over_largest_tokens": round(sweeps[0][1] / largest[0][1], 3),
            "sweep_over_largest_calls": round(sweeps[0][2] / largest[0][2], 3),
            "sweep_over_regeneration_time": round(t_sweep / t_regen, 3),
            "sweep_over_regeneration_tokens": round(sweeps[0][1] / sum(e[1] for e in each), 3),
        }
        print(f"answer budget {answer}: sweep {t_sweep:.2f} s vs largest budget alone {t_max:.2f} s (pair ratios "
              + " ".join(f"{r:.3f}" for r in pairs) + f") vs regeneration {t_regen:.2f} s", file=sys.stderr)

    # engine vs plain generate on a mixed-length workload: thinking up to 192 tokens, stop at a one-token
    # closer (the tiny reasoner's </think>) or else at EOS
    stop = mk.stop[0] if len(mk.stop) == 1 else tok.eos_token_id
    engine = HFEngine(lm.model, tok.pad_token_id, args.batch_size)
    t0 = time.perf_counter()
    outs = engine.generate([Request(p, 192, (stop, tok.eos_token_id)) for p in prompts])
    t_engine = time.perf_counter() - t0
    useful = sum(len(o.ids) for o in outs)
    t0 = time.perf_counter()
    plain_useful = 0
    tok.padding_side = "left"
    for i in range(0, len(prompts), args.batch_size):
        batch = prompts[i : i + args.batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in batch])
        mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in batch])[:, None]).long()
        gen = lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=192, do_sample=False,
                                eos_token_id=[stop, tok.eos_token_id], pad_token_id=tok.pad_token_id)[:, width:]
        for row in gen.tolist():
            kept = 0
            for t in row:
                if t in (stop, tok.eos_token_id):
                    break
                kept += 1
            plain_useful += kept
    t_plain = time.perf_counter() - t0
    print(f"engine {useful / t_engine:.0f} useful tok/s vs generate {plain_useful / t_plain:.0f}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "tts_sweep", "model": args.model, "items": len(items), "budgets": budgets,
        "answer_budgets": by_answer,
        "engine_useful_tokens_per_s": round(useful / t_engine, 1),
        "generate_useful_tokens_per_s": round(plain_useful / t_plain, 1),
        "engine_over_generate": round((useful / t_engine) / (plain_useful / t_plain), 3),
        "same_useful_tokens": useful == plain_useful,
    }))

if __name__ == "__main__":
    main()
