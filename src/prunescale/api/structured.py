"""Layer removal from a spec: score the blocks, remove them, save, and prove the saved folder works."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM

from prunescale.api.loading import Log, calibrate, calibration_notices, load_and_calibrate, saved_dtype
from prunescale.api.output import staged
from prunescale.api.quantize import packed_params, precheck, quantize_loaded, weight_bytes, write_packed
from prunescale.config import StructuredSpec
from prunescale.errors import PrunescaleError
from prunescale.models import save  # looked up at call time: fault-injection tests patch it there
from prunescale.provenance import environment
from prunescale.prune.structured.remove import block_params, remove_blocks
from prunescale.prune.structured.rules import RemovalPlan, RuleInput
from prunescale.registry import REMOVALS

SMOKE_TOKENS = 12  # prompt length of the reload check: long enough to cross every block, cheap on any model
SMOKE_NEW_TOKENS = 6  # greedy tokens compared with and without the KV cache
SMOKE_TOLERANCE = 1e-4  # logits of the reloaded folder vs the model in memory (same dtype, same kernels)


def matched_block_count(sizes: list[int], fraction: float) -> int:
    """Blocks to remove so the removed share of block parameters is closest to ``fraction`` (≥ 1)."""
    total = sum(sizes)
    ordered = sorted(sizes)
    return min(range(1, len(sizes)), key=lambda n: (abs(sum(ordered[:n]) / total - fraction), n))


def smoke_check(model: nn.Module, folder: Path) -> None:
    """Reload ``folder`` with plain transformers: same logits as ``model``; cached == uncached generation
    (a layer index left stale by the removal shows up as a KV-cache mismatch)."""
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=next(model.parameters()).dtype).eval()
    vocab = reloaded.config.vocab_size
    ids = torch.arange(3, 3 + SMOKE_TOKENS).remainder(vocab).reshape(1, -1)
    with torch.no_grad():
        if not torch.allclose(reloaded(ids).logits.float(), model(ids).logits.float(), atol=SMOKE_TOLERANCE,
                              rtol=SMOKE_TOLERANCE):
            raise PrunescaleError(f"the saved folder {folder} does not reproduce the pruned model's logits")
        kw = dict(max_new_tokens=SMOKE_NEW_TOKENS, do_sample=False, pad_token_id=reloaded.config.pad_token_id or 0)
        cached = reloaded.generate(ids, use_cache=True, **kw)
        uncached = reloaded.generate(ids, use_cache=False, **kw)
    if not torch.equal(cached, uncached):
        raise PrunescaleError("generation with the KV cache differs from generation without it after removal")


def _block_count(spec: StructuredSpec, sizes: list[int], log: Log) -> int:
    """How many blocks to remove: as given, matched to a parameter fraction, or the listed indices."""
    n_blocks = len(sizes)
    n = spec.remove_layers
    if spec.match_sparsity is not None:
        n = matched_block_count(sizes, spec.match_sparsity)
        log(f"--match-sparsity {spec.match_sparsity}: removing {n} of {n_blocks} blocks = "
            f"{sum(sorted(sizes)[:n]) / sum(sizes):.4f} of decoder-block parameters")
    if spec.layers is not None:
        bad = [i for i in spec.layers if i >= n_blocks]
        if bad:
            raise PrunescaleError(f"block index {bad[0]} out of range: the model has blocks 0..{n_blocks - 1}")
        n = len(spec.layers)
    if n is None or n >= n_blocks:
        raise PrunescaleError(f"cannot remove {n} blocks: the model has {n_blocks}; remove at most {n_blocks - 1}")
    return n


def prune_structured(spec: StructuredSpec, log: Log = print) -> Path:
    """Remove decoder blocks as ``spec`` says.

    The output is a normal HF folder with fewer layers and a consistent config; before it is moved into
    place it is reloaded with plain transformers, its logits are compared with the in-memory model and
    greedy generation with the KV cache is compared with generation without it.
    """
    t0 = time.perf_counter()
    out = Path(spec.out)
    precheck(spec.model, spec)
    with staged(out, spec.overwrite) as tmp:
        lm, calib = load_and_calibrate(spec, spec.needs_calibration, log, purpose="scores")
        model = lm.model
        dense_bytes = weight_bytes(model, saved_dtype(lm, {}))
        # GPTQ's samples (the pruning count, not the scores'), read from the model before any block goes
        qcal = calibrate(spec, lm, "prune", log) if spec.quant_calibrated else None
        sizes = block_params(model)
        n_blocks, total = len(sizes), sum(p.numel() for p in model.parameters())
        n = _block_count(spec, sizes, log)
        plan: RemovalPlan = REMOVALS[spec.method](RuleInput(
            model, n, calib.samples if calib else (), spec.device, spec.calibration.seed, spec.layers or (),
            spec.keep_last, spec.laco_threshold, spec.laco_span, spec.shortgpt_last))
        if not plan.indices:
            raise PrunescaleError(f"{spec.method} removed no block ({plan.note}); lower the threshold")
        removed_params = sum(sizes[i] for i in plan.indices)
        remove_blocks(model, plan.indices)
        log(f"removed blocks {plan.indices} ({removed_params / sum(sizes):.4f} of block parameters)")
        if plan.note:
            log(f"note: {plan.note}")
        notices = calibration_notices(calib, log) + ([plan.note] if plan.note else [])
        manifest = {
            "base_model": spec.model,
            "base_location": lm.ref.location,
            "kind": "structured",
            "method": spec.method,
            "allocation": None,
            "removed_layers": plan.indices,
            "kept_layers": [i for i in range(n_blocks) if i not in plan.indices],
            "merged_layers": {str(k): v for k, v in plan.merged.items()},
            "scores": plan.scores,
            "num_layers_before": n_blocks,
            "num_layers_after": n_blocks - len(plan.indices),
            "removed_param_fraction": removed_params / total,
            "removed_param_fraction_blocks": removed_params / sum(sizes),
            "target_sparsity": spec.match_sparsity,
            "realised_sparsity": removed_params / sum(sizes),
            "note": plan.note,
            "notices": notices,
            "calibration": calib.spec if calib else None,
            "seed": spec.calibration.seed,
            "elapsed_seconds": round(time.perf_counter() - t0, 2),
            "environment": environment(),
        }
        qparams = packed_params(spec)
        if spec.quantize:  # the blocks that remain
            manifest["quantization"], more = quantize_loaded(spec, lm, qcal, spec.device, False, log, qparams)
            notices += more
        manifest["compute_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
        dtype = saved_dtype(lm, manifest)
        manifest |= {"dense_weight_bytes": dense_bytes,
                     "weight_bytes": weight_bytes(model, dtype, manifest.get("quantization"))}
        save.save_checkpoint(model, lm.tokenizer, tmp, manifest, dtype)
        smoke_check(model, tmp)
        write_packed(spec, model, lm.tokenizer, tmp, qparams, manifest, log)
    return out
