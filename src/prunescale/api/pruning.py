"""Unstructured pruning from a spec: load, calibrate, allocate, prune, audit, save.

:func:`apply_spec` is the one path from a :class:`~prunescale.config.PruneSpec` to a pruned model in memory
(allocation → pattern → method, with the method's options and regime); ``prune``, ``tune-allocation``, the
study and the benchmark scripts all prune through it, so a trial, a variant and a measurement of the same
spec are the same computation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from prunescale.api.loading import Log, calibration_for, calibration_notices, load_and_calibrate, saved_dtype
from prunescale.api.output import staged
from prunescale.api.quantize import packed_params, precheck, quantize_loaded, weight_bytes, write_packed
from prunescale.config import AllocationSpec, PruneSpec
from prunescale.data.calibration import CalibrationSet, load_calibration
from prunescale.models import save  # looked up at call time: fault-injection tests patch it there
from prunescale.models.loader import LoadedModel
from prunescale.models.registry import cache_dir
from prunescale.provenance import environment
from prunescale.prune.allocation.registry import Allocation, AllocationContext, allocate, block_weights
from prunescale.prune.unstructured import Pattern, prune_model
from prunescale.registry import ALLOCATIONS, METHODS


def allocation_context(spec: PruneSpec | AllocationSpec, lm: LoadedModel, calib: CalibrationSet | None,
                       progress: bool) -> AllocationContext:
    """Everything an allocator may need, including LayerIF's task data (train vs held-out split)."""
    cal = spec.calibration
    influence, key = None, ""
    if spec.allocation_kind == "layerif":
        source, seqlen = calibration_for(spec.model, spec.layerif_data, cal.seqlen)
        n = spec.layerif_examples
        train = load_calibration(source, lm.tokenizer, n, seqlen, cal.seed, "train", lm.model, model_name=spec.model)
        held = load_calibration(source, lm.tokenizer, max(1, n // 2), seqlen, cal.seed, "validation", lm.model,
                                model_name=spec.model)
        influence, key = (train.samples, held.samples), json.dumps([train.spec, held.spec], sort_keys=True)
    return AllocationContext(lm.model, spec.sparsity, calib.samples if calib else (), spec.device,
                             spec,  # the spec is an AllocationOptions: its knobs
                             influence_data=influence, influence_key=key, cache=cache_dir(), progress=progress)


def method_kwargs(spec: PruneSpec, alloc: Allocation | None) -> dict:
    """The method's own options and, in the dense regime only (``sequential`` off), the dense input
    statistics an allocation's pass (OWL, DLP) already measured, which the method then reads instead of
    a pass of its own. In the sequential regime (the default) the allocation's dense pass only scores
    blocks, and the method calibrates each block on the outputs of the already-pruned ones, whatever the
    allocation: an allocation never changes how the method gathers its statistics (OWL's reference code
    does the same)."""
    shared = METHODS[spec.method].reads_dense_stats and not spec.sequential
    extra = {"input_stats": alloc.input_stats} if shared and alloc and alloc.input_stats else {}
    return spec.method_options() | extra


@dataclass
class Pruned:
    """What :func:`apply_spec` did: the allocation (None for N:M), the pattern and the method's audit."""

    allocation: Allocation | None
    pattern: Pattern
    result: dict


def apply_spec(spec: PruneSpec, lm: LoadedModel, calib: CalibrationSet | None, progress: bool = False,
               log: Log | None = None) -> Pruned:
    """Prune ``lm.model`` in place as ``spec`` says: its allocation (unless N:M), the pattern, the method with
    its options, and the realised sparsity checked against the target. With ``log``, says what it prunes
    and an allocation that came out uniform."""
    alloc = None if spec.nm else allocate(spec.allocation, allocation_context(spec, lm, calib, progress))
    pattern = Pattern(sparsity=alloc.sparsity if alloc else {}, nm=spec.nm_tuple, group=spec.group)
    if log is not None:
        if alloc and alloc.note:
            log(f"warning: {alloc.note}")
        log(f"pruning {spec.model} with {spec.label} "
            + (f"{spec.nm}" if spec.nm else f"at {spec.sparsity:.0%} ({spec.allocation})"))
    result = prune_model(lm.model, spec.method, pattern, calib.samples if calib else (), device=spec.device,
                         progress=progress, **method_kwargs(spec, alloc))
    return Pruned(alloc, pattern, result)


def _manifest(spec: PruneSpec, lm: LoadedModel, calib: CalibrationSet | None, done: Pruned,
              notices: list[str], seconds: float) -> dict:
    alloc, result = done.allocation, done.result
    total = sum(p.numel() for p in lm.model.parameters())
    block_params = sum(m["params"] for m in result["per_module"].values())
    zeros = sum(m["zeros"] for m in result["per_module"].values())
    return {
        "base_model": spec.model,
        "base_location": lm.ref.location,
        "kind": "unstructured",
        "method": spec.label,  # wanda, or wanda+dsnot where a refinement followed
        "refine": spec.refine,
        "allocation": None if spec.method == "none" else "n:m" if spec.nm else spec.allocation,
        "allocation_per_block": alloc.per_block if alloc else None,
        "allocation_scores": alloc.scores if alloc else {},
        "allocation_note": alloc.note if alloc else "",
        "allocation_options": spec.allocation_options(),
        "nm": spec.nm,
        "comparison_group": spec.comparison_group,
        "target_sparsity": result["target_global"],
        "realised_sparsity": result["realised_global"],
        "realised_per_module": {n: round(m["sparsity"], 6) for n, m in result["per_module"].items()},
        "removed_layers": [],
        "removed_param_fraction": zeros / total,
        "removed_param_fraction_prunable": zeros / max(1, block_params),
        "calibration": calib.spec if calib else None,
        "options": {**spec.method_options(), "device": spec.device, "dtype": spec.dtype},
        "run": {k: v for k, v in result["run"].items() if k not in ("regime", "block_forwards")},
        "seed": spec.calibration.seed,
        # where the pruning statistics came from: sequential (inputs through the already-pruned blocks),
        # dense (the dense model), data-free (magnitude)
        "regime": "" if spec.method == "none" else result["run"].get("regime", "unknown"),  # a plugin may not say
        "block_forwards": result["run"].get("block_forwards", 0) + (alloc.block_forwards if alloc else 0),
        "notices": notices,
        "elapsed_seconds": round(seconds, 2),
        "environment": environment(),
    }


def prune_unstructured(spec: PruneSpec, log: Log = print, progress: bool = True) -> Path:
    """Prune a model as ``spec`` says; returns the output folder.

    The folder is a normal HF model folder plus ``pruning_manifest.json`` and ``allocation.json``, moved
    into place only after the realised sparsity has been checked (:func:`staged`), so a failure never
    leaves a half-written or wrong checkpoint behind.
    """
    t0 = time.perf_counter()
    out = Path(spec.out)
    precheck(spec.model, spec)
    with staged(out, spec.overwrite) as tmp:
        lm, calib = load_and_calibrate(spec, spec.needs_calibration, log)
        notices = calibration_notices(calib, log)  # what a user must see: logged, kept in the manifest
        dense_bytes = weight_bytes(lm.model, saved_dtype(lm, {}))
        done = apply_spec(spec, lm, calib, progress, log)
        if done.allocation and done.allocation.note:
            notices.append(done.allocation.note)
        if done.result["run"].get("percdamp_raised"):
            notices.append(f"SparseGPT needed more damping than {spec.percdamp} for "
                           f"{len(done.result['run']['percdamp_raised'])} module(s); the manifest lists them "
                           "(run.percdamp_raised)")
            log(f"note: {notices[-1]}")
        quantization, qparams = None, packed_params(spec)
        if spec.quantize:  # on the pruned weights, the same calibration tokens
            quantization, more = quantize_loaded(spec, lm, calib, spec.device, progress, log, qparams)
            notices += more
        manifest = _manifest(spec, lm, calib, done, notices, time.perf_counter() - t0)
        manifest["compute_dtype"] = str(next(lm.model.parameters()).dtype).removeprefix("torch.")
        dtype = saved_dtype(lm, manifest)
        manifest["dense_weight_bytes"] = dense_bytes
        manifest["weight_bytes"] = weight_bytes(lm.model, dtype, quantization)
        if quantization:
            manifest["quantization"] = quantization
        save.save_checkpoint(lm.model, lm.tokenizer, tmp, manifest, dtype)
        if not spec.nm:
            (tmp / "allocation.json").write_text(json.dumps(done.pattern.sparsity, indent=1) + "\n")
        write_packed(spec, lm.model, lm.tokenizer, tmp, qparams, manifest, log)
    log(f"realised sparsity {done.result['realised_global']:.4f} (target {done.result['target_global']:.4f}) → {out}")
    return out


def allocation_table(spec: AllocationSpec, progress: bool = False) -> dict:
    """The per-block sparsities an allocation would give, without pruning anything."""
    lm, cal = load_and_calibrate(spec, ALLOCATIONS[spec.allocation_kind].calibrated, lambda _m: None, "scores")
    alloc = allocate(spec.allocation, allocation_context(spec, lm, cal, progress))
    weights = block_weights(lm.model)
    rows = [
        {"block": i, "sparsity": s, "params": w, **{k: v[i] for k, v in alloc.scores.items()}}
        for i, (s, w) in enumerate(zip(alloc.per_block, weights))
    ]
    mean = sum(r["sparsity"] * r["params"] for r in rows) / sum(weights)
    return {"model": spec.model, "allocation": spec.allocation, "target": spec.sparsity, "mean": mean,
            "blocks": rows, "modules": alloc.sparsity}
