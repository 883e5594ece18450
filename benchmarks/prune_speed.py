"""Pruning speed, peak memory and (optionally) agreement with llm-compressor on SmolLM2-135M.

Prunes with Wanda and SparseGPT (our default within-block order, and the one-pass order that
llm-compressor uses), RIA, and Wanda / SparseGPT refined by DSnoT, at 50 % on 128 × 512 GSM8K calibration
tokens; each method's time is also given as a multiple of Wanda's (``time_over_wanda``). Baselines measured in the
same run, each in a fresh child process so its peak RSS is its own:

* ``dense_forward``: one plain forward pass of the dense model over the same tokens (the unavoidable
  cost); pruning time and peak RSS are reported as multiples of it;
* ``llmcompressor`` (with ``--llmcompressor-python`` pointing at the interpreter of a separate venv that
  has llmcompressor; it needs its own transformers pin): the same pruning through ``oneshot`` with the
  sequential pipeline on the *same token ids*, for time / peak-RSS ratios and Wanda mask agreement.

    python benchmarks/prune_speed.py [--model smollm2-135m] [--nsamples 128] [--seqlen 512] \\
        [--llmcompressor-python /path/to/venv/bin/python]
    python benchmarks/prune_speed.py --quick   # the same children on the tiny reasoner, 8 × 64 tokens (CI)

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# Each child's own peak memory (VmHWM): ru_maxrss would carry over the parent's peak across fork and exec.
PEAK_RSS = textwrap.dedent(
    """
    def peak_rss_mib():
        return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
    """
)

OURS = PEAK_RSS + textwrap.dedent(
    """
    import json, sys, time
    import torch
    from transformers import AutoModelForCausalLM
    from prunescale.config import PruneSpec
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    what, folder, ids_file, mask_file = sys.argv[1:5]
    torch.set_num_threads(int(sys.argv[5]))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    samples = [torch.tensor(x) for x in json.load(open(ids_file))]
    t0 = time.perf_counter()
    if what == "dense_forward":
        with torch.no_grad():
            for s in samples:
                model(input_ids=s[None], use_cache=False)
    else:
        name, _, mode = what.partition("-")  # sparsegpt-nonseq: no q,k,v -> o -> gate,up -> down order
        spec = PruneSpec(model=folder, method=name, sparsity=0.5, out=mask_file, sequential=mode != "nonseq")
        prune_model(model, spec.method, Pattern(uniform(model, 0.5)), samples, progress=False,
                    **spec.method_options())
    seconds = time.perf_counter() - t0
    if what != "dense_forward":
        torch.save({n: (m.weight == 0) for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and "layers." in n}, mask_file)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mib()}))
    """
)

LLMCOMPRESSOR = PEAK_RSS + textwrap.dedent(
    """
    import json, sys, time
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import WandaPruningModifier
    from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier

    what, folder, ids_file, mask_file = sys.argv[1:5]
    torch.set_num_threads(int(sys.argv[5]))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = json.load(open(ids_file))
    data = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]})
    cls = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}[what]
    recipe = cls(sparsity=0.5, mask_structure="0:0", targets=["Linear"], ignore=["re:.*lm_head"])
    t0 = time.perf_counter()
    oneshot(model=model, dataset=data, recipe=recipe, num_calibration_samples=len(ids),
            max_seq_length=len(ids[0]), shuffle_calibration_samples=False, pipeline="sequential")
    seconds = time.perf_counter() - t0
    torch.save({n: (m.weight == 0) for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) and "layers." in n}, mask_file)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mib()}))
    """
)


def run_child(python: str, code: str, what: str, folder: str, ids: Path, masks: Path, threads: int) -> dict:
    done = subprocess.run(
        [python, "-c", code, what, folder, str(ids), str(masks), str(threads)], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a: Path, b: Path) -> float:
    import torch

    ma, mb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    same = sum(int((ma[n] == mb[n]).sum()) for n in ma)
    return same / sum(ma[n].numel() for n in ma)


def main() -> None:
    import torch

    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--llmcompressor-python", default=None)
    ap.add_argument(
        "--methods",
        default="wanda,sparsegpt,sparsegpt-nonseq,ria,wanda+dsnot,sparsegpt+dsnot",
        help="comma-separated subset of wanda, sparsegpt (our default: q,k,v -> o -> gate,up -> down in order), "
        "sparsegpt-nonseq (all Linears of a block from one pass, as llm-compressor does), ria, magnitude, and "
        "any of them +dsnot",
    )
    ap.add_argument("--data", default="gsm8k", help="calibration source (its train split)")
    ap.add_argument("--quick", action="store_true", help="the tiny reasoner, 8 × 64 tokens (CI)")
    args = ap.parse_args()
    if args.quick:
        args.model, args.data, args.nsamples, args.seqlen = "tiny-reasoner", "tiny", 8, 64
    from prunescale import plugins

    plugins.load()  # the tiny reasoner's source is a plugin's
    from prunescale.models.loader import materialise

    lm = load_model(args.model, dtype="fp32")  # converts a GGUF once; children load the HF folder
    folder = str(materialise(lm.ref))
    cal = load_calibration(args.data, lm.tokenizer, args.nsamples, args.seqlen, 0)
    del lm
    tmp = Path(tempfile.mkdtemp())
    ids = tmp / "ids.json"
    ids.write_text(json.dumps([s.tolist() for s in cal.samples]))
    res: dict = {
        "dense_forward": run_child(sys.executable, OURS, "dense_forward", folder, ids, tmp / "x", args.threads)
    }
    lc_runs: dict[str, dict] = {}
    for method in args.methods.split(","):
        r = run_child(sys.executable, OURS, method, folder, ids, tmp / f"ours-{method}.pt", args.threads)
        r["time_over_dense_forward"] = round(r["seconds"] / res["dense_forward"]["seconds"], 2)
        r["rss_over_dense_forward"] = round(r["peak_rss_mb"] / res["dense_forward"]["peak_rss_mb"], 3)
        if "wanda" in res:  # RIA and DSnoT cost beside Wanda's, measured in this run
            r["time_over_wanda"] = round(r["seconds"] / res["wanda"]["seconds"], 3)
        res[method] = r
        print(f"prunescale {method}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
        if args.llmcompressor_python and method.split("-")[0] in ("wanda", "sparsegpt"):
            base = method.split("-")[0]  # llm-compressor's SparseGPT is the non-sequential algorithm
            lc_file = tmp / f"lc-{base}.pt"
            if base not in lc_runs:
                lc_runs[base] = run_child(
                    args.llmcompressor_python, LLMCOMPRESSOR, base, folder, ids, lc_file, args.threads
                )
            lc = lc_runs[base]
            r["llmcompressor_seconds"] = round(lc["seconds"], 2)
            r["llmcompressor_peak_rss_mb"] = round(lc["peak_rss_mb"], 1)
            r["time_ratio_vs_llmcompressor"] = round(r["seconds"] / lc["seconds"], 3)
            r["rss_ratio_vs_llmcompressor"] = round(r["peak_rss_mb"] / lc["peak_rss_mb"], 3)
            r["mask_agreement_vs_llmcompressor"] = round(
                agreement(tmp / f"ours-{method}.pt", lc_file), 5
            )
            print(
                f"llm-compressor {method}: {lc['seconds']:.1f} s, peak RSS {lc['peak_rss_mb']:.0f} MB, "
                f"mask agreement {r['mask_agreement_vs_llmcompressor']:.4%}",
                file=sys.stderr,
            )
    print(
        json.dumps(
            {"benchmark": "prune_speed", "model": args.model, "calibration_tokens": args.nsamples * args.seqlen, **res}
        )
    )


if __name__ == "__main__":
    main()
