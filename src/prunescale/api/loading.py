"""Loading a model with its calibration data, the first step of every stage that changes weights.

Sources and devices are checked before the model loads, so a bad one costs nothing; the calibration
samples come from the split meant for them (train), never from what is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from prunescale import plugins
from prunescale.config import Calibration
from prunescale.data.calibration import CalibrationSet, check_source, default_source, load_calibration
from prunescale.models.loader import LoadedModel, check_device, check_dtype, load_model

Log = Callable[[str], None]


def calibration_for(model: str, source: str | None, seqlen: int | None) -> tuple[str, int]:
    """A calibration source and window length with their defaults resolved (the model's embedded source;
    the schema's default length for it)."""
    src = source or default_source(model)
    return src, Calibration(seqlen=seqlen).length(src)


def load_and_calibrate(spec: Any, needs_data: bool, log: Log, purpose: str = "prune"
                       ) -> tuple[LoadedModel, CalibrationSet | None]:
    """Load the model (on the CPU; blocks visit the device one at a time) and its calibration samples
    (``purpose``: prune | scores, which decides the default number of sequences). Sources are checked
    before the model loads, so a bad one costs nothing (a quantizer's too, which may read them later)."""
    plugins.load()
    check_dtype(spec.dtype)
    check_device(spec.device)
    cal = spec.calibration
    if needs_data or getattr(spec, "quant_calibrated", False):
        check_source(calibration_for(spec.model, cal.source, cal.seqlen)[0])
    if getattr(spec, "allocation_kind", None) == "layerif":
        check_source(calibration_for(spec.model, spec.layerif_data, cal.seqlen)[0])
    torch.manual_seed(cal.seed)
    lm = load_model(spec.model, dtype=spec.dtype, device="cpu", trust_remote_code=spec.trust_remote_code)
    return lm, calibrate(spec, lm, purpose, log) if needs_data else None


def calibrate(spec: Any, lm: LoadedModel, purpose: str, log: Log) -> CalibrationSet:
    """The calibration samples of ``spec.calibration`` for ``purpose`` (prune | scores), read with the model
    as loaded (a ``traces:`` source generates with it: call this before changing the weights)."""
    cal = spec.calibration
    source, seqlen = calibration_for(spec.model, cal.source, cal.seqlen)
    n = cal.samples(purpose)
    log(f"calibration: {n} × {seqlen} tokens from {source}")
    return load_calibration(source, lm.tokenizer, n, seqlen, cal.seed, "train", lm.model, model_name=spec.model)


def calibration_notices(calib: CalibrationSet | None, log: Log) -> list[str]:
    """What the calibration data's loader found a user must see (logged now, kept in the manifest)."""
    notice = calib.spec.get("notice") if calib else None
    if notice:
        log(f"warning: {notice}")
    return [notice] if notice else []


def saved_dtype(lm: LoadedModel, manifest: dict) -> torch.dtype:
    """The dtype a pruned folder is saved in: the one the model came in. A GGUF model was dequantised to
    float32 on conversion; the manifest says so."""
    if lm.ref.kind == "gguf":
        manifest["dtype_note"] = "dequantised from GGUF to float32 when converted; saved as float32"
        return torch.float32
    return lm.source_dtype


