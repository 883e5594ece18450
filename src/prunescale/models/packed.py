"""The packed integer format vLLM serves with its int4/int8 weight-only kernels (compressed-tensors'
``pack-quantized``), written from our own quantization parameters and read back.

A quantized folder holds dequantized weights (every engine loads it; accuracy, not speed). With
``--save-format packed`` it also holds ``packed/``: the same integers packed eight (4-bit) or four (8-bit)
to an int32 with each group's scale (in the saved dtype) and zero point, ``config.json`` carrying the
``quantization_config`` that vLLM and transformers read. Our codes are unsigned (``0 … 2^b − 1`` with zero
``z``); compressed-tensors stores them signed, shifted by ``2^(b−1)`` — ``scale·(q − z)`` is unchanged.
The library re-derives each code as ``round(w/scale + z)`` from the dequantized weight, exact because a
dequantized weight lies on its group's grid (within the saved dtype's rounding, far below half a step).

compressed-tensors is optional (``pip install 'prunescale[packed]'``) and imported only here, inside the
functions that need it. Reading: transformers' own loader cannot read an asymmetric group-packed folder yet
(it builds the zero points unpacked while the folder holds them packed, as the format specifies; see
llm-compressor issue #1618), so :func:`load_packed` builds the transformers model from the config and
decompresses each Linear with the library's own decompressor; :func:`prunescale.models.loader.load_model`
uses it for any ``pack-quantized`` folder.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from prunescale.errors import PrunescaleError

FOLDER = "packed"  # the subfolder of a quantized folder
FORMAT = "pack-quantized"


def available() -> bool:
    """Whether compressed-tensors is installed (found without importing it: the check runs before any load)."""
    return importlib.util.find_spec("compressed_tensors") is not None


def is_packed(config: object) -> bool:
    """Whether a transformers config (or its dict) describes a compressed-tensors ``pack-quantized`` model."""
    q = config.get("quantization_config") if isinstance(config, dict) else getattr(config, "quantization_config", None)
    if q is not None and not isinstance(q, dict):
        q = q.to_dict() if hasattr(q, "to_dict") else vars(q)
    return bool(q) and q.get("quant_method") == "compressed-tensors" and q.get("format") == FORMAT


def _scheme(bits: int, group_size: int):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    grouped = {"strategy": "group", "group_size": group_size} if group_size != -1 else {"strategy": "channel"}
    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=bits, type="int", symmetric=False, **grouped))


def save_packed(model: nn.Module, tokenizer, folder: Path, qparams: dict[str, tuple[torch.Tensor, torch.Tensor]],
                bits: int, group_size: int) -> dict:
    """Write ``model`` (dequantized weights; every Linear named in ``qparams`` quantized with that scale and
    zero, shape rows × groups) to ``folder`` in the packed format. Consumes the model: its Linears are replaced
    by packed parameters. Returns the manifest's ``packed`` record. Which bits vLLM serves (4, 8) is the
    option's rule (:class:`prunescale.config.SaveFormat`); the format itself packs 1 to 8."""
    import compressed_tensors
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config

    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    ignore = sorted(linears - set(qparams))  # the LM head (and anything else left unquantized)
    config = QuantizationConfig(config_groups={"group_0": _scheme(bits, group_size)}, ignore=ignore,
                                quantization_status="frozen")
    apply_quantization_config(model, config)
    shift = 2 ** (bits - 1)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, (scale, zero) in qparams.items():
            lin = modules[name]
            if lin.weight_scale.shape != scale.shape:
                raise PrunescaleError(f"{name}: {tuple(scale.shape)} group parameters, the format expects "
                                      f"{tuple(lin.weight_scale.shape)}")
            lin.weight_scale.copy_(scale.to(lin.weight_scale.dtype))
            lin.weight_zero_point.copy_((zero - shift).to(lin.weight_zero_point.dtype))
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format=FORMAT)
    compressor.compress_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    compressor.update_config(str(folder))
    tokenizer.save_pretrained(folder)
    return {"folder": FOLDER, "format": FORMAT, "bits": bits, "group_size": group_size, "modules": len(qparams),
            "ignored": ignore, "compressed_tensors": compressed_tensors.__version__}


def load_packed(folder: str | Path, config, dtype: torch.dtype | str = "auto") -> nn.Module:
    """A transformers model with the dequantized weights of a ``pack-quantized`` folder (module docstring).

    Every packed Linear is decompressed by compressed-tensors' own decompressor with its scheme from the
    config; a weight the folder lacks, or one it has that the model does not, is an error."""
    if not available():  # before the imports below, which would fail with a bare ImportError
        raise PrunescaleError(f"{folder} holds packed integer weights: install compressed-tensors "
                              "(pip install 'prunescale[packed]') to read them")
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils import match_named_modules
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    raw = config.quantization_config
    qconfig = QuantizationConfig.model_validate(raw if isinstance(raw, dict) else raw.to_dict())
    plain = type(config).from_dict({k: v for k, v in config.to_dict().items() if k != "quantization_config"})
    target = config.dtype if dtype == "auto" and getattr(config, "dtype", None) else dtype
    target = torch.float32 if target == "auto" else target
    model = AutoModelForCausalLM.from_config(plain, dtype=target)  # initialised, then every weight replaced
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(shard))
    schemes = {}
    for scheme in qconfig.config_groups.values():
        for name, _ in match_named_modules(model, scheme.targets, qconfig.ignore):
            schemes[name] = scheme
    compressor = BaseCompressor.load_from_registry(FORMAT)
    for name, scheme in schemes.items():
        local = {k.removeprefix(f"{name}."): tensors.pop(k) for k in list(tensors) if k.startswith(f"{name}.weight_")}
        if "weight_packed" not in local:
            raise PrunescaleError(f"{folder}: no packed weights for {name}")
        tensors[f"{name}.weight"] = compressor.decompress(local, scheme)["weight"]
    tensors = {k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()}
    state = model.state_dict()
    shared = _shared_names(model)
    missing = sorted(k for k in set(state) - set(tensors) if not shared.get(k, set()) & set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    if unexpected or missing:
        raise PrunescaleError(f"{folder}: weights do not match the model "
                              f"({'missing ' + missing[0] if missing else 'unexpected ' + unexpected[0]})")
    model.load_state_dict(tensors, strict=False)
    model.tie_weights()
    return model


def _shared_names(model: nn.Module) -> dict[str, set[str]]:
    """Every parameter name with the names sharing its tensor (a tied LM head is saved once, under one)."""
    groups: dict[int, set[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), set()).add(name)
    return {name: names for names in groups.values() for name in names}


def verify_packed(packed: Path, dequantized: Path) -> int:
    """Check that every packed Linear holds the integer codes of the dequantized folder beside it: decompressed
    by the library, each weight is within a quarter of its group's step of the dequantized one (codes differ
    by whole steps; the saved dtype's rounding stays far below a quarter). Returns the modules checked."""
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from safetensors import safe_open

    config = json.loads((packed / "config.json").read_text())["quantization_config"]
    scheme = next(iter(QuantizationConfig.model_validate(config).config_groups.values()))
    compressor = BaseCompressor.load_from_registry(FORMAT)
    where = {}  # tensor name → the dequantized folder's shard holding it
    for shard in sorted(dequantized.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            where |= dict.fromkeys(f.keys(), shard)
    checked = 0
    for shard in sorted(packed.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            keys = list(f.keys())
            for name in (k.removesuffix(".weight_packed") for k in keys if k.endswith(".weight_packed")):
                local = {k.removeprefix(f"{name}."): f.get_tensor(k) for k in keys if k.startswith(f"{name}.weight_")}
                weight = compressor.decompress(local, scheme)["weight"].float()
                with safe_open(where[f"{name}.weight"], "pt") as g:
                    want = g.get_tensor(f"{name}.weight").float()
                scale = local["weight_scale"].float()
                step = scale.repeat_interleave(weight.shape[1] // scale.shape[1], 1)
                if not bool(((weight - want).abs() <= 0.25 * step).all()):
                    raise PrunescaleError(f"packed {name} does not hold the dequantized folder's integer codes")
                checked += 1
    return checked
