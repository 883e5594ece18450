"""GPU smoke check: prune and sampled eval on CUDA, and CPU/CUDA agreement (≤ 8 min on one GPU).

    python benchmarks/gpu_smoke.py [--device cuda] [--out /tmp/gpu-smoke]
    python benchmarks/gpu_smoke.py --device cpu --quick   # the same checks, 16 items, on the CPU (CI)

1. The tiny reasoner: Wanda 20 % pruned on the device (realised sparsity asserted by the pruner), then a
   sampled eval (T = 1.0, top-p 0.95, two seeds, two samples) of the pruned folder on the device and on
   the CPU, fp32. The hf engine draws its uniforms on the CPU, so the two must agree sample for sample
   up to float rounding; the share of identical samples and the accuracy on each side are reported.
2. LayerIF's influences with the whole model on the device vs on the CPU (fp32, tiny reasoner): equal up to
   rounding (max relative difference < 1e-2), and the model is back on the host afterwards.
3. A scripted s1 checkpoint (two-token markers, coins for sampling): the seeded budget sweep on the device
   and on the CPU must be identical row for row (its logits have margins no rounding can flip), and
   equal to one capped run per budget.

Needs only what a CUDA PyTorch image has (torch, transformers, numpy) plus prunescale's other
dependencies as wheels: ``pip install --no-index --find-links WHEELS pydantic math-verify`` or run with
``PYTHONPATH=src``. Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _eval(model: str, device: str, out: Path, seeds: list[int], items: int) -> list[dict]:
    from prunescale.api import evaluate
    from prunescale.config import EvalSpec

    spec = EvalSpec(model=model, benchmark="tiny", limit=items, budgets=[0, 12, 24, 48, 96], samples=2,
                    temperature=1.0, top_p=0.95, seeds=seeds, answer_budget=4, dtype="fp32", device=device,
                    batch_size=64, out=out, overwrite=True)
    run = evaluate(spec, log=lambda m: print(m, file=sys.stderr), progress=False)
    return [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="16 items instead of 100 (CI: --device cpu --quick)")
    args = ap.parse_args()
    items = 16 if args.quick else 100
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA device here (pass --device cpu to exercise the script on the CPU)")
    from prunescale.api import prune
    from prunescale.config import PruneSpec
    from prunescale.toy.scripted import Script, build, literal_rows, sweep_rows
    from prunescale.tts.engines.hf import HFEngine

    root = args.out or Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    root.mkdir(parents=True, exist_ok=True)
    figures: dict = {"benchmark": "gpu_smoke", "device": args.device, "items": items,
                     "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
                     "torch": torch.__version__}
    t0 = time.perf_counter()
    pruned = root / "wanda20"
    prune(PruneSpec(model="tiny-reasoner", method="wanda", sparsity=0.2, device=args.device, dtype="fp32",
                    out=pruned, overwrite=True), log=lambda m: print(m, file=sys.stderr), progress=False)
    manifest = json.loads((pruned / "pruning_manifest.json").read_text())
    figures["prune_seconds"] = round(time.perf_counter() - t0, 2)
    figures["realised_sparsity"] = manifest.get("realised_sparsity")

    t0 = time.perf_counter()
    dev_rows = _eval(str(pruned), args.device, root / "eval-device", [7, 11], items)
    figures["eval_device_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    cpu_rows = _eval(str(pruned), "cpu", root / "eval-cpu", [7, 11], items)
    figures["eval_cpu_seconds"] = round(time.perf_counter() - t0, 2)
    key = lambda r: (r["item_id"], r["seed"], r["sample"], r["budget"])  # noqa: E731
    cpu_by = {key(r): r for r in cpu_rows}
    same = sum((r["thinking"], r["answer"]) == (cpu_by[key(r)]["thinking"], cpu_by[key(r)]["answer"])
               for r in dev_rows)
    figures["samples"] = len(dev_rows)
    figures["identical_sample_share"] = round(same / len(dev_rows), 4)
    for name, rows in (("device", dev_rows), ("cpu", cpu_rows)):
        figures[f"accuracy_{name}_b96"] = round(sum(r["correct"] for r in rows if r["budget"] == 96)
                                                / sum(r["budget"] == 96 for r in rows), 4)

    # 2. LayerIF's whole-model backward passes on the device vs the CPU (the same influences up to rounding)
    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model
    from prunescale.prune.allocation.registry import AllocationContext, allocate

    lm = load_model("tiny-reasoner")
    sizes = ((2, "train"), (1, "validation")) if args.quick else ((8, "train"), (4, "validation"))
    data = tuple(load_calibration("tiny", lm.tokenizer, n, 128, 0, split, lm.model).samples for n, split in sizes)
    t0 = time.perf_counter()  # the registered allocator (no cache), as a prune run calls it
    scores = {d: allocate("layerif", AllocationContext(lm.model, 0.5, (), d, influence_data=data)).scores["influence"]
              for d in (args.device, "cpu")}
    figures["layerif_seconds_both"] = round(time.perf_counter() - t0, 2)
    scale = max(abs(x) for x in scores["cpu"]) or 1.0
    figures["layerif_max_rel_diff"] = round(max(abs(a - b) for a, b in zip(scores[args.device], scores["cpu"]))
                                            / scale, 6)
    figures["layerif_model_back_on_cpu"] = next(lm.model.parameters()).device.type == "cpu"

    folder = build(Script("s1", branch_from=2, answer_alt="7"), root / "s1.1-scripted")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    engines = {d: HFEngine(AutoModelForCausalLM.from_pretrained(folder).to(d).eval(), tok.pad_token_id, 8)
               for d in (args.device, "cpu")}
    budgets, seeds = [0, 2, 3, 5, 6, 9, 13], list(range(16))
    dev = sweep_rows(engines[args.device], folder, budgets, seeds, 1.0, wait_rounds=1)
    cpu = sweep_rows(engines["cpu"], folder, budgets, seeds, 1.0, wait_rounds=1)
    lit = literal_rows(engines[args.device], folder, budgets, seeds, 1.0, wait_rounds=1)
    figures["scripted_device_equals_cpu"] = dev == cpu
    figures["scripted_sweep_equals_literal"] = dev == lit
    print(json.dumps(figures))
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    ok = (dev == cpu and dev == lit and figures["identical_sample_share"] >= 0.95
          and figures["layerif_max_rel_diff"] < 1e-2 and figures["layerif_model_back_on_cpu"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
