"""Both engines on the same workload: useful tokens per second of ``hf`` and ``vllm`` and their ratio.

Opt-in: run it in the vLLM venv (``make vllm-venv``; ``.venv-vllm/bin/python benchmarks/engines.py``).
The workload is a ``prunescale eval`` run, the same for each engine: SmolLM2-135M on 64 GSM8K test items,
budgets 0, 64 and 256, answer budget 32, bf16, greedy. Each engine runs in a child process of its own
(vLLM sets process-wide state); its model load (for vLLM: engine start-up and warm-up) is timed apart
from the evaluation, and the ratio is given with the load excluded and included. Useful tokens are the
tokens each engine generated and kept: every trajectory's thinking once (up to the largest budget) plus
every budget's answer, read from ``samples.jsonl``; both engines give the same greedy tokens, so the
counts agree and the ratio is one of throughput.

    .venv-vllm/bin/python benchmarks/engines.py [--items 64] [--budgets 0,64,256] [--engines hf,vllm]
    python benchmarks/engines.py --quick [--engines hf]   # the tiny reasoner, 8 items (CI; hf where vLLM is absent)

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def useful_tokens(samples: Path) -> int:
    """Thinking once per trajectory (its longest kept thinking) plus every budget's answer."""
    think: dict[tuple, int] = defaultdict(int)
    answers = 0
    for line in samples.read_text().splitlines():
        r = json.loads(line)
        key = (r["item_id"], r["seed"], r["sample"])
        think[key] = max(think[key], r["thinking_tokens"])
        answers += r["answer_tokens"]
    return sum(think.values()) + answers


def child(engine: str, args: argparse.Namespace, out: Path) -> dict:
    """One engine in this process: load, then the eval with the loaded engine."""
    from prunescale import plugins
    from prunescale.api import eos_ids
    from prunescale.config import EvalSpec
    from prunescale.tts.run import evaluate_run

    plugins.load()
    spec = EvalSpec(model=args.model, benchmark=args.benchmark, limit=args.items, budgets=args.budgets,
                    answer_budget=args.answer_budget, dtype=args.dtype, engine=engine, batch_size=args.batch_size,
                    out=out, overwrite=True)
    t0 = time.perf_counter()
    if engine == "vllm":
        from transformers import AutoTokenizer, GenerationConfig

        from prunescale.models.loader import materialise, resolve
        from prunescale.tts.engines.vllm import VLLMEngine

        where = materialise(resolve(args.model))
        tok = AutoTokenizer.from_pretrained(where)
        eng, model = VLLMEngine(where, args.dtype, 1), None
        eos = eos_ids(GenerationConfig.from_pretrained(where))
    else:
        from prunescale.models.loader import load_model
        from prunescale.tts.engines.hf import HFEngine

        lm = load_model(args.model, dtype=args.dtype)
        tok, model = lm.tokenizer, lm.model
        eng = HFEngine(model, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                       args.batch_size)
        eos = eos_ids(model.generation_config)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = evaluate_run(spec, model, tok, eng, log=lambda m: print(m, file=sys.stderr), progress=False, eos=eos)
    seconds = time.perf_counter() - t0
    tokens = useful_tokens(run / "samples.jsonl")
    summary = json.loads((run / "summary.json").read_text())
    return {"load_seconds": round(load, 2), "eval_seconds": round(seconds, 2), "useful_tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1), "tokens_per_s_with_load": round(tokens / (seconds + load), 1),
            "accuracy": {str(b["budget"]): b["accuracy"] for b in summary["budgets"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--benchmark", default="gsm8k")
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--budgets", default="0,64,256")
    ap.add_argument("--answer-budget", type=int, default=32)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--engines", default="hf,vllm")
    ap.add_argument("--quick", action="store_true", help="the tiny reasoner, 8 items, budgets 0,24 (CI)")
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.model, args.benchmark, args.items, args.budgets, args.answer_budget, args.dtype, args.batch_size = \
            "tiny-reasoner", "tiny", 8, "0,24", 4, "fp32", 8
    args.budgets = [int(b) for b in str(args.budgets).split(",")]
    if args.child:  # the result goes to a file: vLLM writes its own logs to stdout
        result = child(args.child, args, args.out)
        (args.out.parent / f"{args.child}.json").write_text(json.dumps(result))
        return
    root = Path(tempfile.mkdtemp(prefix="engines-"))
    results = {}
    for engine in args.engines.split(","):
        cmd = [sys.executable, __file__, "--child", engine, "--out", str(root / engine), "--model", args.model,
               "--benchmark", args.benchmark, "--items", str(args.items), "--budgets",
               ",".join(map(str, args.budgets)), "--answer-budget", str(args.answer_budget), "--dtype", args.dtype,
               "--batch-size", str(args.batch_size)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"engine {engine} failed:\n{done.stderr[-3000:]}")
        results[engine] = json.loads((root / f"{engine}.json").read_text())
        r = results[engine]
        print(f"{engine}: {r['tokens_per_s']} useful tok/s ({r['useful_tokens']} tokens in {r['eval_seconds']} s; "
              f"load {r['load_seconds']} s)", file=sys.stderr)
    line: dict = {"benchmark": "engines", "model": args.model, "data": args.benchmark, "items": args.items,
                  "budgets": args.budgets, "dtype": args.dtype, "engines": results}
    if {"hf", "vllm"} <= results.keys():
        hf, vl = results["hf"], results["vllm"]
        line["hf_over_vllm"] = round(hf["tokens_per_s"] / vl["tokens_per_s"], 3)
        line["hf_over_vllm_with_load"] = round(hf["tokens_per_s_with_load"] / vl["tokens_per_s_with_load"], 3)
        line["same_useful_tokens"] = hf["useful_tokens"] == vl["useful_tokens"]
    print(json.dumps(line))


if __name__ == "__main__":
    main()
