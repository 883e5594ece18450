"""What a 7-8B study needs, per stage: peak host memory and time, measured and extrapolated.

Full-width, randomly initialised Qwen3-8B and s1.1-7B (Qwen2.5-7B shape) configs are cut to 1 and 2
decoder blocks and saved in bf16 (the embeddings and LM head are full size). Each stage runs in a child
process (its own peak RSS) at the papers' sequence length (2048 tokens) on 1 and 2 blocks, each at two
calibration sizes (2 and 16 sequences; SparseGPT 2 and 8; LayerIF 2 and 6 training examples with half as
many held out), after a warm page cache and a short untimed warm-up; only the stage's computation is
timed (loading a folder varies by more than a block costs). `fit` extrapolates linearly in the number of
blocks and in the calibration size to the full depth (36 and 28 blocks) and the papers' 128 × 2048 tokens
(LayerIF: its default 32 + 16 examples); it says how in its docstring. Generation is seconds per 1 000
tokens decoded at batch 8 (64-token prompts, 64 new tokens), fitted in the number of blocks; the KV cache
per sequence is computed from the config. CPU only; the measured figures ride along in the JSON.

    python benchmarks/hardware.py [--shapes qwen3-8b,s1.1-7b] [--stages wanda,…] [--out runs/hardware]
    python benchmarks/hardware.py --quick   # wanda, owl and generate on a 4-block, 128-wide model (CI)

Prints a Markdown table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prunescale.provenance import peak_rss_mib

SHAPES = {
    "qwen3-8b": dict(arch="qwen3", hidden_size=4096, intermediate_size=12288, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, layers=36, tie_word_embeddings=False),
    "s1.1-7b": dict(arch="qwen2", hidden_size=3584, intermediate_size=18944, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064, layers=28, tie_word_embeddings=False),
    # --quick: the same stages and fits on a model small enough for CI (the tiny reasoner's tokenizer)
    "mini": dict(arch="qwen3", hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=32, vocab_size=0, layers=4, tie_word_embeddings=False),
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
    if shape == "mini":
        from prunescale.toy.tokenizer import build_tokenizer

        tok = build_tokenizer()
        spec["vocab_size"] = len(tok)
    cls, model_cls = (Qwen3Config, Qwen3ForCausalLM) if arch == "qwen3" else (Qwen2Config, Qwen2ForCausalLM)
    config = cls(num_hidden_layers=layers, max_position_embeddings=4096, dtype="bfloat16", **spec)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = model_cls(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    if shape == "mini":
        tok.save_pretrained(folder)
        return folder
    tok_source = load_model("smollm2-135m").ref  # a real tokenizer (its ids are inside these vocabularies)
    from prunescale.models.loader import materialise

    AutoTokenizer.from_pretrained(materialise(tok_source)).save_pretrained(folder)
    return folder


def child(stage: str, folder: str, n: int, seqlen: int, data: str = "gsm8k") -> dict:
    """One stage in this process; returns its seconds and this process's peak RSS."""
    import torch

    torch.set_num_threads(2)

    def warm_up(model) -> None:
        """One short forward and an fp32 matmul before anything is timed: the first call of each kernel
        (oneDNN / AMX set-up, allocator growth) otherwise lands in the smallest run and skews every slope."""
        with torch.no_grad():
            model(input_ids=(torch.arange(10, 74) % model.config.vocab_size)[None], use_cache=False)
            x = torch.randn(1024, model.config.hidden_size)
            _ = x.T @ x
    from prunescale import plugins
    from prunescale.api.pruning import allocation_context
    from prunescale.config import AllocationSpec
    from prunescale.data.calibration import load_calibration
    from prunescale.models.loader import load_model
    from prunescale.prune.allocation.registry import allocate
    from prunescale.prune.unstructured import Pattern, prune_model, uniform

    plugins.load()  # the tiny reasoner's source is a plugin's
    cal = {"source": data, "nsamples": n, "seqlen": seqlen}
    if stage in ("wanda", "sparsegpt", "owl", "layerif"):
        # only the stage's own computation is timed: loading a 2-3 GB folder varies by more than a block costs
        extra = {"layerif_examples": n, "layerif_data": data} if stage == "layerif" else {}
        spec = AllocationSpec(model=folder, allocation="uniform" if stage in ("wanda", "sparsegpt") else stage,
                              sparsity=0.5, calibration=cal, **extra)
        lm = load_model(folder)
        samples = load_calibration(data, lm.tokenizer, n, seqlen, model=lm.model).samples
        ctx = allocation_context(spec, lm, type("C", (), {"samples": samples})(), False)
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
        samples = load_calibration(data, lm.tokenizer, n, seqlen, model=lm.model).samples
        warm_up(lm.model)
        t0 = time.perf_counter()
        boundary_cosines(lm.model, samples, 1)
    elif stage == "generate":
        from prunescale.tts.engines.base import Request
        from prunescale.tts.engines.hf import HFEngine

        lm = load_model(folder)
        engine = HFEngine(lm.model, 0, batch_size=8)
        vocab = lm.model.config.vocab_size
        reqs = [Request([(10 + k + j) % vocab for j in range(64)], n) for k in range(8)]  # n new tokens, batch 8
        engine.generate([Request([(10 + j) % vocab for j in range(64)], 2)])  # warm-up
        t0 = time.perf_counter()
        engine.generate(reqs)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mib()}


def warm(folder: Path) -> None:
    """Read a model folder once so that every child finds it in the page cache (a cold first read made
    the first child of each stage slower than the second and the fitted slopes negative)."""
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def run_child(stage: str, folder: Path, n: int, seqlen: int, data: str = "gsm8k") -> dict:
    warm(folder)
    done = subprocess.run([sys.executable, __file__, "--child", stage, "--folder", str(folder), "--n", str(n),
                           "--seqlen", str(seqlen), "--data", data], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def kv_mb_per_1k(shape: str) -> float:
    """KV cache of one sequence per 1 000 tokens in bf16 (keys and values, every block): what an evaluation
    adds on top of the weights for each sequence in flight, computed from the config."""
    spec = SHAPES[shape]
    head_dim = spec.get("head_dim", spec["hidden_size"] // spec["num_attention_heads"])
    return 2 * spec["layers"] * spec["num_key_value_heads"] * head_dim * 2 * 1000 / 2**20


def fit(
    runs: dict, sizes: tuple[int, int], full_layers: int, full_size: int, block_mb: float, unit_mb: float = 0.0
) -> dict:
    """Extrapolate four runs (1 and 2 blocks × two calibration sizes) to the full depth and size.

    Time: the first block's cost f(T) and each further block's marginal cost m(T) = t(2, T) − t(1, T) are
    each linear in the calibration size T (two points each; a 1-block run never propagates its outputs, a
    further block does, so the two are fitted apart); full = f(T_full) + (L − 1)·m(T_full).
    Memory: every block stays resident on the host, so each further block adds m₁ = the larger of the
    measured 2-vs-1-block difference and one block's bf16 weights; the activations held for all blocks
    add m₂ per unit of T: the slope between the two 2-block runs, at least ``unit_mb`` (an input and an
    output copy of the hidden states: a peak set by a per-block transient, as OWL's scores, hides the
    slope at small T); peak = RSS(2, T₂) + (L − 2)·m₁ + (T_full − T₂)·m₂. Both floors make the figure
    an estimate from above where the measurement cannot see the term."""
    t1, t2 = sizes

    def line(y1: float, y2: float) -> tuple[float, float]:
        slope = (y2 - y1) / (t2 - t1)
        return y1 - slope * t1, slope

    sec = {k: r["seconds"] for k, r in runs.items()}
    rss = {k: r["peak_rss_mb"] for k, r in runs.items()}
    f0, f1 = line(sec[(1, t1)], sec[(1, t2)])
    m0, m1s = line(sec[(2, t1)] - sec[(1, t1)], sec[(2, t2)] - sec[(1, t2)])
    seconds = f0 + f1 * full_size + (full_layers - 1) * (m0 + m1s * full_size)
    mem_block = max((rss[(2, t1)] - rss[(1, t1)] + rss[(2, t2)] - rss[(1, t2)]) / 2, block_mb)
    mem_unit = max(unit_mb, (rss[(2, t2)] - rss[(2, t1)]) / (t2 - t1))
    peak = rss[(2, t2)] + (full_layers - 2) * mem_block + (full_size - t2) * mem_unit
    return {"hours_full": round(max(0.0, seconds) / 3600, 2), "peak_rss_gb_full": round(peak / 1024, 1),
            "seconds_per_further_block": [round(m0 + m1s * t, 2) for t in (t1, t2, full_size)],
            "mb_per_further_block": round(mem_block), "mb_per_unit": round(mem_unit, 4),
            "measured": {f"{k[0]} block(s), size {k[1]}": v for k, v in runs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--folder")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--shapes", default="qwen3-8b,s1.1-7b")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data", default="gsm8k", help="calibration source of the stages")
    ap.add_argument("--quick", action="store_true", help="the mini shape at 64 tokens on the tiny source, three "
                    "stages (CI)")
    args = ap.parse_args()
    if args.quick:  # three stages (a pruning method, an allocator, generation): a child process costs seconds
        args.shapes, args.seqlen, args.data, args.stages = "mini", 64, "tiny", "wanda,owl,generate"
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.n, args.seqlen, args.data)))
        return
    root = args.out or Path(tempfile.mkdtemp(prefix="hardware-"))
    s = args.seqlen
    stages = args.stages.split(",")
    table: dict = {}
    for shape in args.shapes.split(","):
        folders = {L: build(shape, L, root / f"{shape}-{L}") for L in (1, 2)}
        full_layers = SHAPES[shape]["layers"]
        block_mb = (folder_bytes(folders[2]) - folder_bytes(folders[1])) / 2**20
        weights_gb = (folder_bytes(folders[1]) / 2**20 + (full_layers - 1) * block_mb) / 1024
        table[shape] = {"weights_gb": round(weights_gb, 1), "kv_mb_per_1k_tokens": round(kv_mb_per_1k(shape), 1)}
        for stage in stages:
            if stage == "generate":  # n = new tokens per request (8 requests)
                new = 64
                g1, g2 = (run_child(stage, folders[L], new, s, args.data) for L in (1, 2))
                per_layer = g2["seconds"] - g1["seconds"]
                fixed = g1["seconds"] - per_layer
                secs = (fixed + full_layers * per_layer) / (8 * new) * 1000
                mem = g1["peak_rss_mb"] + (full_layers - 1) * max(g2["peak_rss_mb"] - g1["peak_rss_mb"], block_mb)
                table[shape][stage] = {"seconds_per_1k_tokens": round(secs, 1), "peak_rss_gb": round(mem / 1024, 1),
                                       "measured": [g1, g2]}
            else:
                # calibration size: sequences of seqlen (LayerIF: training examples, half as many held out)
                counts = {"sparsegpt": (2, 8), "layerif": (2, 6)}.get(stage, (2, 16))
                runs = {(L, n): run_child(stage, folders[L], n, s, args.data) for L in (1, 2) for n in counts}
                full = 32 if stage == "layerif" else FULL_TOKENS // s
                # hidden states of one sequence, bf16, an input and an output copy (LayerIF: one example at a time)
                unit_mb = 0.0 if stage == "layerif" else 2 * s * SHAPES[shape]["hidden_size"] * 2 / 2**20
                table[shape][stage] = fit(runs, counts, full_layers, full, block_mb, unit_mb)
            print(f"{shape} {stage}: {json.dumps({k: v for k, v in table[shape][stage].items() if k != 'measured'})}",
                  file=sys.stderr)
    lines = ["| stage | " + " | ".join(f"{s} time | {s} host memory" for s in table) + " |",
             "|---|" + "---:|---:|" * len(table)]
    for stage in stages:
        cells = []
        for shape in table:
            r = table[shape][stage]
            if stage == "generate":
                cells += [f"{r['seconds_per_1k_tokens']} s / 1k tokens",
                          f"{r['peak_rss_gb']} GB + {table[shape]['kv_mb_per_1k_tokens']} MB KV / 1k tokens / sequence"]
            else:
                cells += [f"{r['hours_full']} h", f"{r['peak_rss_gb_full']} GB"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps({"benchmark": "hardware", "device": "cpu", "seqlen": s, "full_tokens": FULL_TOKENS,
                      "shapes": table}))


if __name__ == "__main__":
    main()
