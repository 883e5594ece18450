"""GPTQ parity and cost against a reference GPTQ, in the same run: perplexity, identical integers, time, memory.

SmolLM2-135M (fp32, from its GGUF) quantized to 4 bits in groups of 64 (its widths, 576 and 1536, are not
multiples of 128) on 128 × 512 tokens of GSM8K train text; held-out perplexity on 64 × 512-token windows of
the GSM8K test split. Variants: dense, RTN, our GPTQ (static groups, the default, llm-compressor's rule), our
GPTQ with dynamic groups (the IST-DASLab reference's rule), llm-compressor's GPTQ on the same tokens,
and Wanda 50 % followed by our GPTQ and by llm-compressor's GPTQ (which keeps the mask of a sparse matrix).
Each GPTQ runs in a child process of its own (ours: this script's ``--worker``; the reference: its venv,
``make llmc-venv``), so time (the GPTQ step, model load excluded) and peak memory (the child's peak RSS,
model included) are measured the same way for both. ``identical`` is the share of decoder weights whose
dequantized values agree (same integer on the same grid) with the reference's.

Without the llm-compressor venv the baseline is our RTN in a worker (``reference: rtn``): the ratios then
say what GPTQ costs over rounding, not how it compares with llm-compressor.

    python benchmarks/quantize_speed.py [--bits 4 --group-size 64] [--out runs/quantize_speed.json]
    python benchmarks/quantize_speed.py --quick      # the tiny reasoner, 8 × 64 tokens, groups of 32 (CI)

Prints a Markdown table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prunescale.provenance import peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks.reference, when run as a script


def worker(args: argparse.Namespace) -> None:
    """One quantization in this process: load, quantize (timed), save; report seconds and peak RSS."""
    import torch

    from prunescale.models.loader import load_model
    from prunescale.prune.quantization import quantize_gptq, quantize_rtn

    torch.set_num_threads(args.threads)
    lm = load_model(args.model, dtype="fp32")
    samples = torch.load(args.calib)
    t0 = time.perf_counter()
    if args.method == "rtn":
        quantize_rtn(lm.model, bits=args.bits, group_size=args.group_size)
    else:
        quantize_gptq(lm.model, samples, bits=args.bits, group_size=args.group_size, progress=False,
                      static_groups=args.method != "gptq-dynamic")
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()  # before saving, as the reference reads it
    lm.model.save_pretrained(args.out)
    lm.tokenizer.save_pretrained(args.out)
    (Path(args.out) / "ours.json").write_text(json.dumps({"seconds_gptq": seconds, "peak_rss_mib": peak}))


def _ours(method: str, model: str, calib: Path, out: Path, bits: int, group: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--method", method, "--model", model, "--calib", str(calib),
           "--bits", str(bits), "--group-size", str(group), "--threads", str(threads), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker {method} failed:\n{done.stderr[-3000:]}")
    return {**json.loads((out / "ours.json").read_text()), "out_dir": str(out)}


def _decoder_weights(folder: str) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(Path(folder) / "model.safetensors").items()
            if ".layers." in k and k.endswith("proj.weight")}


def identical_share(a: str, b: str) -> float:
    """The share of decoder-Linear weights with the same dequantized value (within fp32 rounding)."""
    wa, wb = _decoder_weights(a), _decoder_weights(b)
    same = sum(int(((wa[k] - wb[k]).abs() <= 1e-6 * wb[k].abs().clamp(min=1e-3)).sum()) for k in wb)
    return same / sum(v.numel() for v in wb.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="gsm8k")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv-llmc")
    ap.add_argument("--reference-dir", type=Path, default=None,
                    help="a finished llm-compressor run of the dense model on the same tokens (llmc_gptq.py --out)")
    ap.add_argument("--no-wanda-reference", action="store_true", help="skip llm-compressor on the Wanda model")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", default="gptq", help=argparse.SUPPRESS)
    ap.add_argument("--calib", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.model, args.data, args.group_size, args.nsamples, args.seqlen, args.windows = \
            "tiny-reasoner", "tiny", 32, 8, 64, 4

    import torch
    from benchmarks.reference.llmc import available

    from prunescale import plugins
    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model

    plugins.load()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lm = load_model(args.model, dtype="fp32")
    calib = load_calibration(args.data, lm.tokenizer, args.nsamples, args.seqlen, 0, "train", lm.model,
                             model_name=args.model)
    held = load_calibration(args.data, lm.tokenizer, args.windows, args.seqlen, 0, "test", lm.model, allow_test=True,
                            model_name=args.model)
    reference = "llm-compressor" if args.reference_dir or available(args.venv) else "rtn"
    tmp = Path(tempfile.mkdtemp(prefix="quantize_speed-"))
    try:
        result = _measure(args, lm, calib, held, reference, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


def _measure(args: argparse.Namespace, lm, calib, held, reference: str, tmp: Path) -> dict:
    """Every variant of the module docstring in ``tmp``; returns the JSON line's figures."""
    import torch
    from benchmarks.reference.llmc import run_reference

    from prunescale.api import apply_spec
    from prunescale.config import PruneSpec
    from prunescale.eval.perplexity import perplexity
    from prunescale.models.loader import load_model

    cal_file = tmp / "calibration.pt"
    torch.save([s.detach().long().contiguous() for s in calib.samples], cal_file)
    dense_dir = tmp / "dense"
    lm.model.save_pretrained(dense_dir)
    lm.tokenizer.save_pretrained(dense_dir)
    spec = PruneSpec(model=args.model, method="wanda", sparsity=0.5, out="unused",
                     calibration={"source": args.data, "nsamples": args.nsamples, "seqlen": args.seqlen})
    wanda_lm = load_model(args.model, dtype="fp32")
    apply_spec(spec, wanda_lm, calib)  # exactly as `prune` does
    wanda_dir = tmp / "wanda50"
    wanda_lm.model.save_pretrained(wanda_dir)
    wanda_lm.tokenizer.save_pretrained(wanda_dir)

    q = (args.bits, args.group_size, args.threads)
    runs: dict[str, dict] = {"dense": {"out_dir": str(dense_dir)}, "wanda 50 %": {"out_dir": str(wanda_dir)}}
    runs["rtn"] = _ours("rtn", str(dense_dir), cal_file, tmp / "rtn", *q)
    runs["gptq (ours)"] = _ours("gptq", str(dense_dir), cal_file, tmp / "gptq", *q)
    if reference == "llm-compressor":  # the IST-DASLab rule for group parameters, beside our default
        runs["gptq dynamic groups (ours)"] = _ours("gptq-dynamic", str(dense_dir), cal_file, tmp / "gptq-dyn", *q)
    runs["wanda 50 % + gptq (ours)"] = _ours("gptq", str(wanda_dir), cal_file, tmp / "wanda-gptq", *q)
    if reference == "llm-compressor":
        ref = lambda src, out: run_reference(Path(src), calib.samples, args.bits, args.group_size, False,  # noqa: E731
                                             out, args.venv, threads=args.threads)
        given = args.reference_dir
        runs["gptq (llm-compressor)"] = (
            {**json.loads((given / "reference.json").read_text()), "out_dir": str(given)} if given
            else ref(dense_dir, tmp / "ref"))
        if not args.no_wanda_reference:
            runs["wanda 50 % + gptq (llm-compressor)"] = ref(wanda_dir, tmp / "ref-wanda")
    for name, run in runs.items():
        model = load_model(run["out_dir"], dtype="fp32").model
        run["perplexity"] = perplexity(model, held.samples)["perplexity"]
        print(f"{name}: ppl {run['perplexity']:.3f}", file=sys.stderr)
    base = runs["gptq (llm-compressor)"] if reference == "llm-compressor" else runs["rtn"]
    ours = runs["gptq (ours)"]
    result = {"benchmark": "quantize_speed", "model": args.model, "bits": args.bits, "group_size": args.group_size,
              "calibration": f"{args.data} train {args.nsamples} x {args.seqlen}", "heldout": held.spec,
              "reference": reference,
              "time_ratio": ours["seconds_gptq"] / base["seconds_gptq"],
              "peak_rss_ratio": ours["peak_rss_mib"] / base["peak_rss_mib"],
              "perplexity": {k: round(v["perplexity"], 4) for k, v in runs.items()},
              "seconds": {k: round(v["seconds_gptq"], 2) for k, v in runs.items() if "seconds_gptq" in v},
              "peak_rss_mib": {k: round(v["peak_rss_mib"], 1) for k, v in runs.items() if "peak_rss_mib" in v}}
    if reference == "llm-compressor":
        pairs = {"gptq": ("gptq (ours)", "gptq (llm-compressor)"),
                 "gptq dynamic groups": ("gptq dynamic groups (ours)", "gptq (llm-compressor)"),
                 "wanda 50 % + gptq": ("wanda 50 % + gptq (ours)", "wanda 50 % + gptq (llm-compressor)")}
        pairs = {k: (a, b) for k, (a, b) in pairs.items() if b in runs}
        result["ppl_ratio_vs_reference"] = {k: runs[a]["perplexity"] / runs[b]["perplexity"]
                                            for k, (a, b) in pairs.items()}
        result["identical"] = {k: round(identical_share(runs[a]["out_dir"], runs[b]["out_dir"]), 4)
                               for k, (a, b) in pairs.items()}
    lines = ["| variant | perplexity | GPTQ seconds | peak RSS MiB |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['perplexity']:.3f} | {v.get('seconds_gptq', float('nan')):.1f} | "
              f"{v.get('peak_rss_mib', float('nan')):.0f} |" for k, v in runs.items()]
    print("\n".join(lines), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
