"""Reference GPTQ: llm-compressor's one-shot GPTQ on exact calibration sequences, saved dequantized.

Run with the llm-compressor venv (``make llmc-venv``), never with prunescale's own: this script imports
neither prunescale nor anything of this repository, so the two GPTQ implementations share nothing but the
files they read and write::

    .venv-llmc/bin/python benchmarks/reference/llmc_gptq.py --model DIR --calib calib.pt --out OUT \
        [--bits 4] [--group-size 128] [--act-order] [--damp 0.01] [--block 128] [--threads N]

What it runs (llmcompressor 0.14 / compressed-tensors 0.19):

* ``GPTQModifier`` with one explicit ``QuantizationScheme``: weights only, ``type=int``,
  ``symmetric=False``, ``strategy=group`` with ``group_size`` (``channel`` for ``--group-size -1``),
  ``observer=memoryless_minmax`` (min-max of the weights, the weight default made explicit), no activation
  quantization. Targets: every ``Linear`` inside the decoder layers; every other ``Linear`` (``lm_head``)
  is in ``ignore``. ``dampening_frac=--damp`` (added as ``damp·mean(diag H)``), ``block_size=--block``.
* Activation ordering: off (``actorder=None``; the modifier's own default would be ``static``) unless
  ``--act-order``, which uses ``actorder="weight"`` (``"static"`` is only its alias in this release):
  columns processed by descending Hessian diagonal, groups the contiguous columns of the original order,
  no ``g_idx`` stored.
* The sequential pipeline (one decoder layer at a time; every Linear of a layer gets its Hessian from one
  pass over the calibration set, whose inputs went through the already *quantized* earlier layers;
  ``propagate_error=True``), on the CPU when there is no accelerator.
* ``--group-size`` must divide the input width of every target (llm-compressor refuses otherwise, as
  prunescale does): SmolLM2-135M (widths 576 and 1536) takes 32, 64 or -1, not 128.
* Calibration: the ``torch.save``d list of 1-D LongTensors is fed as a DataLoader, batch size 1, in file
  order: each sequence one sample, no shuffling, truncation or padding (``attention_mask`` all ones).

Behaviour worth knowing when comparing with a textbook GPTQ: llm-compressor takes every group's scale and
zero from the weights *before* any GPTQ update (its observer runs before the column loop), with or
without act-order, i.e. the reference's "static groups". The IST-DASLab reference (and prunescale without
act-order) takes a group's parameters when the loop reaches its first column, from the updated weights.
When a Hessian's Cholesky factorisation fails, llm-compressor quantizes that matrix round-to-nearest
(logged as a warning) instead of raising the dampening.

Integer convention (checked against compressed-tensors 0.19 ``calculate_qparams`` / ``_quantize``):
for ``int`` with ``b`` bits compressed-tensors uses the SIGNED range ``[qmin, qmax] = [-2^(b-1), 2^(b-1)-1]``
and, asymmetric, ``scale = (max - min)/(2^b - 1)`` (min ≤ 0 ≤ max, widened to contain 0, as GPTQ's),
``zero_point = round(clamp(qmin - min/scale, qmin, qmax))`` (stored as int8), ``q = round(clamp(w/scale +
zero_point, qmin, qmax))`` and ``w_hat = scale·(q - zero_point)``. With ``o = 2^(b-1)`` the unsigned GPTQ
reference quantizer (``q_u = clamp(round(w/scale) + zero_u, 0, 2^b - 1)``, ``w_hat = scale·(q_u - zero_u)``)
is the same grid shifted: ``zero_u = zero_point + o`` and ``q_u = q + o``; ``scale`` is identical and so is
``w_hat``. (``qmin - min/scale`` rounds like ``-min/scale`` shifted by the even integer ``qmin``, and
clamp-then-round equals round-then-clamp for integer bounds; the two differ only at exact .5 ties of
``w/scale`` with an odd zero, where ``round(x + z)`` and ``round(x) + z`` disagree under half-to-even.) An
all-zero group is the one place the conventions part: compressed-tensors gives it scale ``eps`` instead of
GPTQ's ``[-1, 1]`` range. ``reference.json`` repeats the offset under ``integer_convention``.

Output (``--out``): an HF model folder whose quantized Linear weights are the dequantized values in
float32 (plain ``transformers`` loads it; no compressed-tensors config), the tokenizer files of ``--model``
if present, ``qparams.pt`` (quantized Linear name → ``{"scale", "zero_point"[, "g_idx"]}`` as
llm-compressor produced them) and ``reference.json`` (timings, peak RSS, versions, settings).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far: ``VmHWM`` (the high-water mark of this process's own
    memory; standalone, so not prunescale's helper). Not ``ru_maxrss``: Linux carries that over from the
    parent across fork and exec, so a child would report at least its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="Hugging Face model folder")
    p.add_argument("--calib", required=True, type=Path,
                   help="torch.save'd list of 1-D LongTensors of token ids, all the same length")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group-size", type=int, default=128, help="columns per group; -1 = one group per row")
    p.add_argument("--act-order", action="store_true", help='actorder="weight" (static groups)')
    p.add_argument("--damp", type=float, default=0.01, help="dampening fraction of mean(diag H)")
    p.add_argument("--block", type=int, default=128, help="GPTQ lazy-update block size (columns)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    if a.group_size != -1 and a.group_size < 1:
        p.error("--group-size must be >= 1 or -1")
    if not 2 <= a.bits <= 8:
        p.error("--bits must be in 2..8")
    return a


def load_calibration(path: Path) -> list[torch.Tensor]:
    samples = torch.load(path, weights_only=True)
    if not isinstance(samples, (list, tuple)) or not samples:
        raise SystemExit(f"{path}: expected a non-empty list of 1-D LongTensors")
    length = None
    for i, s in enumerate(samples):
        if not isinstance(s, torch.Tensor) or s.dim() != 1 or s.dtype != torch.long:
            raise SystemExit(f"{path}: sample {i} is not a 1-D LongTensor")
        length = s.numel() if length is None else length
        if s.numel() != length:
            raise SystemExit(f"{path}: sample {i} has {s.numel()} tokens, sample 0 has {length}")
    return list(samples)


def decoder_layer_linears(model: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Names of the Linears inside the decoder layers (the targets) and of every other Linear (ignored)."""
    layer_types = set(getattr(model, "_no_split_modules", None) or [])
    inside, outside = [], []
    layer_prefixes = [n + "." for n, m in model.named_modules() if type(m).__name__ in layer_types]
    if not layer_prefixes:
        raise SystemExit(f"cannot find the decoder layers of {type(model).__name__} (_no_split_modules)")
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            (inside if any(name.startswith(p) for p in layer_prefixes) else outside).append(name)
    return inside, outside


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import compressed_tensors
    import llmcompressor
    import transformers
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme, QuantizationStrategy
    from llmcompressor import oneshot
    from llmcompressor.core import active_session
    from llmcompressor.modifiers.gptq import GPTQModifier
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    samples = load_calibration(args.calib)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    try:  # only saved alongside; llm-compressor needs a processor object when data is given
        processor = AutoTokenizer.from_pretrained(args.model)
    except Exception:  # noqa: BLE001 - a folder without a tokenizer (e.g. a tiny random model)
        processor = object()  # never used: the data arrive already tokenized as a DataLoader
    seconds_load = time.perf_counter() - t0
    rss_after_load = peak_rss_mib()

    targets, ignore = decoder_layer_linears(model)
    channel = args.group_size == -1
    weights = QuantizationArgs(
        num_bits=args.bits,
        type="int",
        symmetric=False,
        strategy=QuantizationStrategy.CHANNEL if channel else QuantizationStrategy.GROUP,
        group_size=None if channel else args.group_size,
        dynamic=False,
        observer="memoryless_minmax",
    )
    scheme = QuantizationScheme(targets=["Linear"], weights=weights)
    actorder = "weight" if args.act_order else None
    recipe = GPTQModifier(
        config_groups={"group_0": scheme},
        ignore=ignore,
        block_size=args.block,
        dampening_frac=args.damp,
        actorder=actorder,
    )

    def collate(batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = torch.stack(batch)  # batch size 1: one sequence per sample, as given
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    loader = DataLoader(samples, batch_size=1, shuffle=False, collate_fn=collate)

    load_start = os.getloadavg()
    t1, c1 = time.perf_counter(), time.process_time()
    model = oneshot(model=model, processor=processor, recipe=recipe, dataset=loader,
                    num_calibration_samples=len(samples), shuffle_calibration_samples=False,
                    pipeline="sequential")
    seconds_gptq, cpu_seconds_gptq = time.perf_counter() - t1, time.process_time() - c1
    load_end = os.getloadavg()
    rss_after_gptq = peak_rss_mib()

    # Collect the fake-quantized weights and the parameters llm-compressor produced.
    qparams: dict[str, dict[str, torch.Tensor]] = {}
    new_weights: dict[str, torch.Tensor] = {}
    resolved_actorder = None
    worst = 0.0
    qmin, qmax = -(2 ** (args.bits - 1)), 2 ** (args.bits - 1) - 1
    for name, m in model.named_modules():
        if not hasattr(m, "weight_scale"):
            continue
        scale = m.weight_scale.detach().float().cpu().clone()
        zero = m.weight_zero_point.detach().cpu().clone()
        entry = {"scale": scale, "zero_point": zero}
        if getattr(m, "weight_g_idx", None) is not None:
            entry["g_idx"] = m.weight_g_idx.detach().cpu().clone()
        qparams[name] = entry
        resolved_actorder = getattr(m.quantization_scheme.weights, "actorder", None)
        w = m.weight.detach().float().cpu().clone()
        new_weights[name + ".weight"] = w
        # The weights must already lie on the grid: recompute the codes and dequantize again.
        cols = w.shape[1]
        gidx = entry.get("g_idx")
        if gidx is None:
            width = cols if scale.shape[1] == 1 else cols // scale.shape[1]
            gidx = torch.arange(cols) // width
        s, z = scale[:, gidx.long()], zero.float()[:, gidx.long()]
        q = torch.round(torch.clamp(w / s + z, qmin, qmax))
        worst = max(worst, float((s * (q - z) - w).abs().max()))
    missing = sorted(set(targets) - set(qparams))
    if missing:
        raise SystemExit(f"llm-compressor left {len(missing)} target Linears unquantized, e.g. {missing[0]}")
    # Drop llm-compressor's copy (its session keeps a reference) before loading the plain model to save.
    active_session().reset()
    del model, recipe, loader
    gc.collect()

    t2 = time.perf_counter()
    plain = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    state = plain.state_dict()
    for key, w in new_weights.items():
        state[key].copy_(w)
    plain.save_pretrained(args.out)
    for f in TOKENIZER_FILES:
        src = args.model / f
        if src.is_file() and not (args.out / f).exists():
            shutil.copy2(src, args.out / f)
    torch.save(qparams, args.out / "qparams.pt")
    seconds_save = time.perf_counter() - t2

    report = {
        "seconds_gptq": seconds_gptq,
        "seconds_gptq_note": "wall time of llmcompressor.oneshot on the loaded model: tracing, the "
                             "calibration and propagation passes and GPTQ itself; model load and save excluded",
        "cpu_seconds_gptq": cpu_seconds_gptq,
        "loadavg_1min_before_after": [load_start[0], load_end[0]],
        "seconds_load": seconds_load,
        "seconds_save": seconds_save,
        "peak_rss_mib": rss_after_gptq,
        "peak_rss_mib_after_load": rss_after_load,
        "peak_rss_mib_end": peak_rss_mib(),
        "peak_rss_note": "VmHWM of this process (its own peak, not its parent's): peak_rss_mib is "
                         "read right after the GPTQ step (model load included), _end after saving",
        "versions": {
            "llmcompressor": llmcompressor.__version__,
            "compressed_tensors": compressed_tensors.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "settings": {
            "bits": args.bits,
            "group_size": args.group_size,
            "strategy": "channel" if channel else "group",
            "type": "int",
            "symmetric": False,
            "observer": "memoryless_minmax",
            "act_order": bool(args.act_order),
            "actorder": actorder,
            "actorder_resolved": None if resolved_actorder is None else str(getattr(resolved_actorder, "value",
                                                                                       resolved_actorder)),
            "dampening_frac": args.damp,
            "block_size": args.block,
            "pipeline": "sequential",
            "propagate_error": True,
            "static_groups": True,
            "num_samples": len(samples),
            "seq_len": int(samples[0].numel()),
            "batch_size": 1,
            "threads": torch.get_num_threads(),
            "targets": len(targets),
            "ignore": ignore,
        },
        "quantized_modules": len(qparams),
        "max_abs_requant_error": worst,
        "integer_convention": {
            "signed_range": [qmin, qmax],
            "unsigned_offset": 2 ** (args.bits - 1),
            "mapping": "zero_u = zero_point + offset; q_u = q + offset; scale identical; "
                       "w_hat = scale*(q - zero_point) = scale*(q_u - zero_u)",
        },
        "model": str(args.model),
        "calib": str(args.calib),
        "out": str(args.out),
    }
    (args.out / "reference.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds_gptq", "peak_rss_mib", "quantized_modules",
                                             "max_abs_requant_error")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
