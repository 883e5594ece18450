"""The options of weight quantization, after pruning or alone: one group shared by every pruning spec, a
study variant (dense ones included) and ``prunescale quantize``."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from prunescale.config.common import Calibration, Device, ModelInput, Output
from prunescale.config.fields import Strict, changed, one_of
from prunescale.registry import QUANTIZERS, knob_names

BITS = (8, 4, 3, 2)  # 2 is accepted with a warning: GPTQ's own results at 2 bits are near collapse
DEFAULT_GROUP = 128
SAVE_FORMATS = ("dequantized", "packed")
PACKED_BITS = (4, 8)  # what vLLM's weight-only integer kernels (W4A16, W8A16) serve


class QuantizeOptions(Strict):
    """Weight-only integer quantization of every Linear in the decoder blocks (pruned zeros stay zero)."""

    quantize: str | None = Field(None, description="Quantize the weights after pruning: @quantizers@ "
                                 "(default: none). Saved dequantized in the model's dtype.")
    bits: int = Field(4, description="Quantization: bits per weight (8, 4, 3; 2 with a warning).")
    group_size: int = Field(DEFAULT_GROUP, description="Quantization: input columns per scale/zero group "
                            "(-1 = one group per row); must divide every Linear's input width.")
    act_order: bool = Field(False, description="GPTQ: process columns by descending Hessian diagonal (groups "
                            "stay contiguous; the order is undone on save).")

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize(cls, v: Any) -> Any:
        if v in (None, "none"):
            return None
        if v not in QUANTIZERS:
            raise ValueError(f"unknown quantization method {v!r}; choose one of none, {', '.join(QUANTIZERS)}")
        return v

    @field_validator("bits")
    @classmethod
    def _bits(cls, v: int) -> int:
        if v not in BITS:
            raise ValueError(f"bits must be one of {', '.join(map(str, BITS))}, got {v}")
        return v

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int) -> int:
        if v != -1 and v < 1:
            raise ValueError(f"group_size must be ≥ 1 or -1 (one group per row), got {v}")
        return v

    @model_validator(mode="after")
    def _quantize_options(self) -> QuantizeOptions:
        reads = set(QUANTIZERS[self.quantize].options) if self.quantize else set()
        stray = changed(self, knob_names(QUANTIZERS) - reads)
        if stray:
            if self.quantize:
                raise ValueError(f"{stray[0]} is not an option of {self.quantize}")
            raise ValueError(f"{stray[0]} is a quantization option: give --quantize ({', '.join(QUANTIZERS)})")
        return self

    @property
    def quantization(self) -> dict[str, Any] | None:
        """The quantizer's own options by name (None: no quantization)."""
        if not self.quantize:
            return None
        return {k: getattr(self, k) for k in QUANTIZERS[self.quantize].options}

    @property
    def quant_label(self) -> str:
        """``gptq-w4-g128`` (``-act`` with act-order), ``none`` without quantization."""
        if not self.quantize:
            return "none"
        group = "row" if self.group_size == -1 else str(self.group_size)
        return f"{self.quantize}-w{self.bits}-g{group}" + ("-act" if self.act_order else "")

    @property
    def quant_warnings(self) -> list[str]:
        """What a user must be told about these settings (kept in the manifest's notices)."""
        if self.quantize and self.bits == 2:
            return ["2-bit weights: GPTQ's own results at 2 bits are near collapse; expect a model that "
                    "barely reasons"]
        return []

    @property
    def quant_calibrated(self) -> bool:
        return bool(self.quantize) and QUANTIZERS[self.quantize].calibrated


class SaveFormat(Strict):
    """How a quantized model is written. An output option of the commands that write one, not of a study
    variant: it never changes what is measured."""

    save_format: Annotated[str, one_of("save-format", SAVE_FORMATS)] = Field(
        "dequantized", description=f"{' | '.join(SAVE_FORMATS)}: packed also writes packed/, the integer folder "
        "vLLM serves with its int4/int8 kernels (compressed-tensors pack-quantized; --bits "
        f"{' or '.join(map(str, PACKED_BITS))}).")

    @model_validator(mode="after")
    def _packed(self) -> SaveFormat:
        if self.save_format != "packed":
            return self
        if not getattr(self, "quantize", None):
            raise ValueError("--save-format packed writes quantized weights: give --quantize "
                             f"({', '.join(QUANTIZERS)})")
        if getattr(self, "bits", None) not in PACKED_BITS:
            raise ValueError(f"--save-format packed holds {' or '.join(map(str, PACKED_BITS))}-bit weights (vLLM's "
                             f"integer kernels), not {getattr(self, 'bits', None)}")
        if importlib.util.find_spec("compressed_tensors") is None:
            raise ValueError("--save-format packed needs compressed-tensors: pip install 'prunescale[packed]'")
        return self


class QuantizeSpec(QuantizeOptions, SaveFormat, ModelInput, Device, Output):
    """Quantize a model or an already pruned folder (``prunescale quantize``)."""

    calibration: Calibration = Calibration()

    @model_validator(mode="after")
    def _needs_method(self) -> QuantizeSpec:
        if not self.quantize:
            raise ValueError(f"give --quantize ({', '.join(QUANTIZERS)})")
        return self
