"""Weight quantization from a spec: after pruning or layer removal in the same run, or on a saved folder.

:func:`quantize_loaded` is the one path from quantization options to a quantized model in memory (used by
``prune --quantize``, layer removal with ``--quantize``, ``prunescale quantize`` and the benchmark); it
returns the manifest's ``quantization`` record. :func:`weight_bytes` is the size estimate the report shows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from prunescale.api.loading import Log, calibration_notices, load_and_calibrate, saved_dtype
from prunescale.api.output import staged
from prunescale.config import QuantizeOptions, QuantizeSpec, SaveFormat
from prunescale.data.calibration import CalibrationSet
from prunescale.errors import PrunescaleError
from prunescale.models import save  # looked up at call time: fault-injection tests patch it there
from prunescale.models.anatomy import prunable_linears
from prunescale.models.loader import LoadedModel, materialise, resolve
from prunescale.provenance import environment
from prunescale.prune.quantization import check_group_size
from prunescale.registry import QUANTIZERS

SCALE_BYTES = 2  # a group's scale stored as fp16 in the packed formats (its zero takes ``bits`` bits)


def input_widths(config: dict) -> dict[str, int]:
    """The input widths of a decoder block's Linears, from a config.json (what a group size must divide)."""
    hidden = config.get("hidden_size")
    heads, head_dim = config.get("num_attention_heads"), config.get("head_dim")
    widths = {"hidden_size (q, k, v, gate, up projections)": hidden,
              "intermediate_size (down projection)": config.get("intermediate_size"),
              "attention width (o projection)": heads * head_dim if heads and head_dim else hidden}
    return {k: v for k, v in widths.items() if isinstance(v, int)}


def precheck(model: str, options: QuantizeOptions) -> None:
    """Refuse a group size that cannot fit the model before the model loads, where its config.json is at
    hand (a local folder or an embedded model); others are checked once loaded, before any work."""
    if not options.quantize or options.group_size == -1:
        return
    ref = resolve(model)
    if ref.kind != "folder":
        return
    config = json.loads((Path(materialise(ref)) / "config.json").read_text())
    check_group_size(input_widths(config.get("text_config", config)), options.group_size)


def quantize_loaded(options: QuantizeOptions, lm: LoadedModel, calib: CalibrationSet | None, device: str,
                    progress: bool, log: Log, qparams: dict | None = None) -> tuple[dict, list[str]]:
    """Quantize ``lm.model`` in place; returns the manifest's ``quantization`` record and its notices.
    ``qparams`` (when given) receives every Linear's group parameters (what the packed format needs)."""
    assert options.quantize and options.quantization is not None
    quantizer = QUANTIZERS[options.quantize]
    if quantizer.calibrated and calib is None:
        raise PrunescaleError(f"{options.quantize} needs calibration samples")
    notices = list(options.quant_warnings)
    for n in notices:
        log(f"warning: {n}")
    log(f"quantizing with {options.quant_label}")
    record = quantizer(lm.model, calib.samples if calib else (), device, progress, **options.quantization,
                       qparams=qparams)
    raised = record.get("percdamp_raised") or {}
    if raised:
        notices.append(f"GPTQ needed more damping than {record['percdamp']} for {len(raised)} module(s); the "
                       "manifest lists them (quantization.percdamp_raised)")
        log(f"note: {notices[-1]}")
    record["label"] = options.quant_label
    record["calibration"] = calib.spec if calib and quantizer.calibrated else None
    return record, notices


def packed_params(spec: SaveFormat) -> dict | None:
    """A dict to collect the group parameters in when ``spec`` asks for the packed format, else None."""
    return {} if spec.save_format == "packed" else None


def write_packed(spec: QuantizeOptions, model: nn.Module, tokenizer, folder: Path, qparams: dict | None,
                 manifest: dict, log: Log) -> None:
    """After the dequantized folder is written (and checked): ``folder/packed`` in compressed-tensors'
    packed format, verified to hold the dequantized folder's integer codes, with its own copy of the
    manifest; the folder's manifest records it. Consumes ``model``. Nothing to do without ``qparams``."""
    if qparams is None:
        return
    from prunescale.models import packed

    log(f"writing the packed {spec.bits}-bit folder → {packed.FOLDER}/")
    record = packed.save_packed(model, tokenizer, folder / packed.FOLDER, qparams, spec.bits, spec.group_size)
    record["verified_modules"] = packed.verify_packed(folder / packed.FOLDER, folder)
    manifest["packed"] = record
    save.write_manifest(folder / packed.FOLDER, manifest)
    save.write_manifest(folder, manifest)


def weight_bytes(model: nn.Module, dtype: torch.dtype, quantization: dict | None = None) -> int:
    """An estimate of the bytes a deployment needs for the weights: parameters outside the decoder Linears in
    ``dtype``; each decoder Linear as the cheaper of dense storage and sparse storage (kept values plus a
    one-bit mask), values at the quantization's bits plus a scale (fp16) and a zero (``bits``) per group
    when quantized. An estimate: real formats add alignment, index and metadata overhead."""
    size = dtype.itemsize
    linears = prunable_linears(model)
    inside = {id(lin.weight) for lin in linears.values()}
    total = sum(p.numel() * size for p in model.parameters() if id(p) not in inside)
    for lin in linears.values():
        rows, cols = lin.weight.shape
        numel, kept = rows * cols, int((lin.weight != 0).sum())
        value, extra = float(size), 0.0
        if quantization:
            bits, group = quantization["bits"], quantization["group_size"]
            value = bits / 8
            extra = rows * (cols // (cols if group == -1 else group)) * (SCALE_BYTES + bits / 8)
        total += min(numel * value, kept * value + numel / 8) + extra
    return int(total)


def quantize_folder(spec: QuantizeSpec, log: Log = print, progress: bool = True) -> Path:
    """Quantize a model or an already pruned folder; a pruned folder's manifest is extended (its pruning record
    kept, ``quantization`` added), never replaced. Written through :func:`staged`."""
    t0 = time.perf_counter()
    precheck(spec.model, spec)
    source = Path(spec.model)
    before = save.read_manifest(source) if source.is_dir() else None
    if before and before.get("quantization"):
        raise PrunescaleError(f"{spec.model} is already quantized ({before['quantization'].get('label')}); "
                              "quantize the folder it was made from")
    with staged(Path(spec.out), spec.overwrite) as tmp:
        lm, calib = load_and_calibrate(spec, spec.quant_calibrated, log)
        notices = calibration_notices(calib, log)
        manifest = before or {"base_model": spec.model, "base_location": lm.ref.location, "kind": "dense",
                              "method": "none", "target_sparsity": 0.0, "removed_layers": []}
        dtype = saved_dtype(lm, manifest)
        manifest.setdefault("dense_weight_bytes", weight_bytes(lm.model, dtype))
        qparams = packed_params(spec)
        record, more = quantize_loaded(spec, lm, calib, spec.device, progress, log, qparams)
        record["elapsed_seconds"] = round(time.perf_counter() - t0, 2)
        manifest["quantization"] = record
        manifest["weight_bytes"] = weight_bytes(lm.model, dtype, record)
        manifest["notices"] = [*manifest.get("notices", []), *notices, *more]
        manifest["quantize_environment"] = environment()
        save.save_checkpoint(lm.model, lm.tokenizer, tmp, manifest, dtype)
        write_packed(spec, lm.model, lm.tokenizer, tmp, qparams, manifest, log)
    log(f"quantized ({spec.quant_label}; mean relative weight error {record['mean_relative_error']:.4f}) → {spec.out}")
    return Path(spec.out)
