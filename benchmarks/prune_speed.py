"""Pruning speed and peak memory on SmolLM2-135M (Wanda and SparseGPT, 128 × 512 calibration tokens).

Baseline measured in the same run: ``dense_forward``, one plain forward pass of the dense model over the
same calibration tokens — the unavoidable cost; pruning time and peak RSS are reported as multiples of it.
(A same-run comparison against llm-compressor is not part of this script yet.)

Each measurement runs in a fresh child process so peak RSS is its own.

    python benchmarks/prune_speed.py [--model smollm2-135m] [--nsamples 128] [--seqlen 512]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    what, model_name, nsamples, seqlen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    lm = load_model(model_name, dtype="fp32")
    cal = load_calibration("gsm8k", lm.tokenizer, nsamples, seqlen, 0)
    t0 = time.perf_counter()
    if what == "dense_forward":
        with torch.no_grad():
            for s in cal.samples:
                lm.model(input_ids=s[None], use_cache=False)
    else:
        prune_model(lm.model, what, Pattern(uniform(lm.model, 0.5)), cal.samples, progress=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def run_child(python: str, what: str, args: argparse.Namespace) -> dict:
    done = subprocess.run([python, "-c", CHILD, what, args.model, str(args.nsamples), str(args.seqlen)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    args = ap.parse_args()
    res = {"dense_forward": run_child(sys.executable, "dense_forward", args)}
    for method in ("wanda", "sparsegpt"):
        res[method] = run_child(sys.executable, method, args)
        res[method]["over_dense_forward_time"] = round(res[method]["seconds"] / res["dense_forward"]["seconds"], 2)
        res[method]["over_dense_forward_rss"] = round(
            res[method]["peak_rss_mb"] / res["dense_forward"]["peak_rss_mb"], 3)
        print(f"{method}: {res[method]['seconds']:.1f} s, peak RSS {res[method]['peak_rss_mb']:.0f} MB "
              f"({res[method]['over_dense_forward_time']}× a dense forward)", file=sys.stderr)
    tokens = args.nsamples * args.seqlen
    print(json.dumps({"benchmark": "prune_speed", "model": args.model, "calibration_tokens": tokens, **res}))


if __name__ == "__main__":
    main()
