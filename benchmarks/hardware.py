"""What a 7-8B study needs, per stage: peak host memory and time, measured and extrapolated.

Full-width, randomly initialised Qwen3-8B and s1.1-7B (Qwen2.5-7B shape) configs are cut to 1 and 2
decoder blocks and saved in bf16 (the embeddings and LM head are full size). Each stage runs in a child
process (its own peak RSS) with a few calibration sequences: 1 block at 4 × 512 tokens, 2 blocks at 4 × 512
and 8 × 512, and the figures are fitted as time = a + L·(b + c·T) and memory = m₀ + L·m₁ + T·m₂ (L blocks,
T calibration tokens; m₁ at least one block's bf16 weights, which stay on the host; the token slopes from the 2-block
runs; a short untimed warm-up first), then evaluated at the full depth
(36 and 28 blocks) and the papers' 128 × 2048 tokens. Only each stage's computation is timed (not loading
the folder, which varies by more than a block costs). Layer
scores (ShortGPT) are fitted the same way; generation is measured as seconds per 1 000 tokens decoded at
batch 8, fitted in L. CPU only here (no GPU in this session); the attention cost that grows with the
square of the sequence is inside the measured per-token slope at the measured length only.

    python benchmarks/hardware.py [--shapes qwen3-8b,s1.1-7b] [--seqlen 512] [--out runs/hardware]

Prints a Markdown table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "qwen3-8b": dict(arch="qwen3", hidden_size=4096, intermediate_size=12288, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, layers=36, tie_word_embeddings=False),
    "s1.1-7b": dict(arch="qwen2", hidden_size=3584, intermediate_size=18944, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064, layers=28, tie_word_embeddings=False),
}
STAGES = ("wanda", "sparsegpt", "owl", "layerif", "scores", "generate")
FULL_TOKENS = 128 * 2048


def build(shape: str, layers: int, folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from prunescale.models.loader import load_model

    if (folder / "config.json").exists() and (folder / "tokenizer.json").exists():
        return folder  # built by an earlier run with the same --out
    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    spec.pop("layers")
    cls, model_cls = (Qwen3Config, Qwen3ForCausalLM) if arch == "qwen3" else (Qwen2Config, Qwen2ForCausalLM)
    config = cls(num_hidden_layers=layers, max_position_embeddings=4096, dtype="bfloat16", **spec)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = model_cls(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok_source = load_model("smollm2-135m").ref  # a real tokenizer (its ids are inside these vocabularies)
    from prunescale.models.loader import materialise

    AutoTokenizer.from_pretrained(materialise(tok_source)).save_pretrained(folder)
    return folder


def child(stage: str, folder: str, n: int, seqlen: int) -> dict:
    """One stage in this process; returns its seconds and this process's peak RSS."""
    import torch

    torch.set_num_threads(2)

    def warm_up(model) -> None:
        """One short forward and an fp32 matmul before anything is timed: the first call of each kernel
        (oneDNN / AMX set-up, allocator growth) otherwise lands in the smallest run and skews every slope."""
        with torch.no_grad():
            model(input_ids=torch.arange(100, 164)[None], use_cache=False)
            x = torch.randn(1024, model.config.hidden_size)
            _ = x.T @ x
    from prunescale.api import _allocation_context
    from prunescale.config import AllocationSpec
    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model
    from prunescale.prune.allocation.registry import allocate
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    cal = {"source": "gsm8k", "nsamples": n, "seqlen": seqlen}
    if stage in ("wanda", "sparsegpt", "owl", "layerif"):
        # only the stage's own computation is timed: loading a 2-3 GB folder varies by more than a block costs
        extra = {"layerif_examples": n, "layerif_data": "gsm8k"} if stage == "layerif" else {}
        spec = AllocationSpec(model=folder, allocation="uniform" if stage in ("wanda", "sparsegpt") else stage,
                              sparsity=0.5, calibration=cal, **extra)
        lm = load_model(folder)
        samples = load_calibration("gsm8k", lm.tokenizer, n, seqlen, model=lm.model).samples
        ctx = _allocation_context(spec, lm, type("C", (), {"samples": samples})(), False)
        ctx.cache = None  # LayerIF's scores are cached by weights: a cached run would time nothing
        warm_up(lm.model)
        t0 = time.perf_counter()
        if stage in ("wanda", "sparsegpt"):
            prune_model(lm.model, stage, Pattern(uniform(lm.model, 0.5)), samples, progress=False)
        else:
            allocate(stage, ctx)
    elif stage == "scores":
        from prunescale.prune.structured.scores import boundary_cosines

        lm = load_model(folder)
        samples = load_calibration("gsm8k", lm.tokenizer, n, seqlen, model=lm.model).samples
        warm_up(lm.model)
        t0 = time.perf_counter()
        boundary_cosines(lm.model, samples, 1)
    elif stage == "generate":
        from prunescale.tts.engines.base import Request
        from prunescale.tts.engines.hf import HFEngine

        lm = load_model(folder)
        engine = HFEngine(lm.model, 0, batch_size=8)
        reqs = [Request(list(range(100 + k, 164 + k)), n) for k in range(8)]  # n new tokens each, batch 8
        engine.generate([Request(list(range(100, 164)), 2)])  # warm-up
        t0 = time.perf_counter()
        engine.generate(reqs)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def warm(folder: Path) -> None:
    """Read a model folder once so that every child finds it in the page cache (a cold first read made
    the first child of each stage slower than the second and the fitted slopes negative)."""
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def run_child(stage: str, folder: Path, n: int, seqlen: int) -> dict:
    warm(folder)
    done = subprocess.run([sys.executable, __file__, "--child", stage, "--folder", str(folder), "--n", str(n),
                           "--seqlen", str(seqlen)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--folder")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--shapes", default="qwen3-8b,s1.1-7b")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.n, args.seqlen)))
        return
    root = args.out or Path(tempfile.mkdtemp(prefix="hardware-"))
    n1, n2, s = 4, 8, args.seqlen
    table: dict = {}
    for shape in args.shapes.split(","):
        folders = {L: build(shape, L, root / f"{shape}-{L}") for L in (1, 2)}
        full_layers = SHAPES[shape]["layers"]
        block_mb = (folder_bytes(folders[2]) - folder_bytes(folders[1])) / 2**20
        table[shape] = {}
        for stage in STAGES:
            if stage == "generate":  # n = new tokens per request (8 requests)
                g1, g2 = run_child(stage, folders[1], 32, s), run_child(stage, folders[2], 32, s)
                per_layer = g2["seconds"] - g1["seconds"]
                fixed = g1["seconds"] - per_layer
                secs = (fixed + full_layers * per_layer) / (8 * 32) * 1000
                mem = g1["peak_rss_mb"] + (full_layers - 1) * max(g2["peak_rss_mb"] - g1["peak_rss_mb"], block_mb)
                table[shape][stage] = {"seconds_per_1k_tokens": round(secs, 1), "peak_rss_gb": round(mem / 1024, 1),
                                       "measured": [g1, g2]}
                print(f"{shape} {stage}: {table[shape][stage]}", file=sys.stderr)
                continue
            r11 = run_child(stage, folders[1], n1, s)
            r21 = run_child(stage, folders[2], n1, s)
            r22 = run_child(stage, folders[2], n2, s)
            tokens = (n1 * s, n2 * s)
            # time = a + L·(b + c·T): the token slope from the two 2-block runs (twice the signal of one
            # block), the block term from 1 vs 2 blocks at the smaller token count
            c = (r22["seconds"] - r21["seconds"]) / (2 * (tokens[1] - tokens[0]))
            b = (r21["seconds"] - r11["seconds"]) - c * tokens[0]
            a = r11["seconds"] - b - c * tokens[0]
            # memory: every block stays resident on the host (at least its bf16 weights each); the token
            # term (activations and per-sample arguments kept on the host) from the two 2-block runs
            m2 = max(0.0, (r22["peak_rss_mb"] - r21["peak_rss_mb"]) / (tokens[1] - tokens[0]))
            m1 = max(r21["peak_rss_mb"] - r11["peak_rss_mb"], block_mb)
            peak = r22["peak_rss_mb"] + (full_layers - 2) * m1 + (FULL_TOKENS - tokens[1]) * m2
            table[shape][stage] = {
                "hours_full": round(max(0.0, a + full_layers * (b + c * FULL_TOKENS)) / 3600, 2),
                "peak_rss_gb_full": round(peak / 1024, 1),
                "seconds_per_block_per_1k_tokens": round(c * 1000, 3),
                "seconds_per_block_fixed": round(b, 2),
                "measured": {f"1 block, {tokens[0]} tokens": r11, f"2 blocks, {tokens[0]} tokens": r21,
                             f"2 blocks, {tokens[1]} tokens": r22},
            }
            print(f"{shape} {stage}: {json.dumps({k: v for k, v in table[shape][stage].items() if k != 'measured'})}",
                  file=sys.stderr)
    lines = ["| stage | " + " | ".join(f"{s} time | {s} host memory" for s in table) + " |",
             "|---|" + "---:|---:|" * len(table)]
    for stage in STAGES:
        cells = []
        for shape in table:
            r = table[shape][stage]
            if stage == "generate":
                cells += [f"{r['seconds_per_1k_tokens']} s / 1k tokens", f"{r['peak_rss_gb']} GB"]
            else:
                cells += [f"{r['hours_full']} h", f"{r['peak_rss_gb_full']} GB"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps({"benchmark": "hardware", "device": "cpu", "seqlen": s, "full_tokens": FULL_TOKENS,
                      "shapes": table}))


if __name__ == "__main__":
    main()
