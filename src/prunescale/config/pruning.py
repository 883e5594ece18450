"""The option groups of pruning: calibration data, device, output, allocation, one method, one removal rule.

Every option is a field here, with its default, constraint and help; a CLI command's options are generated
from the groups it takes (:mod:`prunescale.cli_options`), a study variant is a group plus a name. Which
options a method, refinement, allocation or removal rule reads is declared with it in
:mod:`prunescale.registry`; an option set for one that does not read it is an error, never ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from prunescale.config.common import Calibration, Device, ModelInput, Output
from prunescale.config.fields import (
    OptionalPositive,
    Positive,
    Strict,
    changed,
    one_of,
    parse_nm,
    read_allocation_file,
    registered,
    within,
)
from prunescale.config.quantization import QuantizeOptions, SaveFormat
from prunescale.registry import ALLOCATIONS, METHODS, REFINEMENTS, REMOVALS, knob_names


class AllocationOptions(Strict):
    """How a global sparsity S is spread over blocks, with every allocation's knobs."""

    allocation: str = Field("uniform", description="Layer-wise allocation of S: @allocations@.")
    owl_m: Annotated[float, within("OWL's outlier threshold M", 0, low_open=True)] = Field(
        5.0, description="OWL: outlier threshold M (scores > M × mean).")
    owl_lambda: Annotated[float, within("OWL's λ", 0, low_open=True)] = Field(
        0.08, description="OWL: block sparsities span a range 2λ wide around S (mean S).")
    epsilon: Annotated[float, within("ε", 0, 1, low_open=True)] = Field(
        0.3, description="AlphaPruning / LayerIF: ratio range 1 ± ε.")
    layerif_data: str | None = Field(None, description="LayerIF task data source (its train and held-out splits "
                                     "are used; default: the model's embedded source).")
    layerif_examples: Positive = Field(32, description="LayerIF: training examples (half as many held out).")
    dlp_alpha: Annotated[float, within("DLP's α", 0, 1, low_open=True)] = Field(
        0.15, description="DLP: block sparsities span S ± α (by block importance; mean S).")
    atp_beta: Annotated[float, within("ATP's β", 0, 1)] = Field(
        0.01, description="ATP: step of the arithmetic progression of block sparsities (deeper blocks pruned "
        "more; mean S).")

    @field_validator("allocation")
    @classmethod
    def _allocation(cls, v: str) -> str:
        kind, _, path = v.partition(":")
        if kind not in ALLOCATIONS or (kind == "file") != bool(path):
            choices = [a for a in ALLOCATIONS if a != "file"]
            raise ValueError(f"unknown allocation {v!r}; choose one of {', '.join(choices)}, file:PATH")
        if kind == "file":
            read_allocation_file(path)  # a missing or malformed file is found before anything loads
        return v

    @property
    def allocation_kind(self) -> str:
        return self.allocation.split(":", 1)[0]

    def check_knobs(self, sparsity: float | None) -> None:
        """Knobs belong to their allocation, and OWL's λ fits the target sparsity."""
        stray = changed(self, knob_names(ALLOCATIONS) - set(ALLOCATIONS[self.allocation_kind].options))
        if stray:
            raise ValueError(f"{stray[0]} is not a knob of allocation {self.allocation_kind!r}")
        if self.allocation == "owl" and sparsity is not None and (
                not self.owl_lambda < sparsity or sparsity + self.owl_lambda >= 1):
            raise ValueError(f"OWL needs 0 < λ < S and S + λ < 1 (S={sparsity}, λ={self.owl_lambda})")


GRID_ALIASES = {"m": "owl_m", "lambda": "owl_lambda"}  # OWL's knobs as its paper names them


def grid_knobs() -> dict[str, str]:
    """``tune-allocation --grid`` names → allocation knobs: every numeric knob of an allocation, OWL's also by
    its paper's names."""
    numeric = [k for k in knob_names(ALLOCATIONS) if AllocationOptions.model_fields[k].annotation is float]
    ordered = sorted(numeric, key=list(AllocationOptions.model_fields).index)
    return {**{a: k for a, k in GRID_ALIASES.items() if k in numeric},
            **{k: k for k in ordered if k not in GRID_ALIASES.values()}}


class UnstructuredOptions(AllocationOptions, QuantizeOptions):
    """One unstructured pruning method and its settings, then optionally quantization (a study variant of this
    kind, minus its name)."""

    method: Annotated[str, registered(METHODS)] = Field(
        description="@methods@; METHOD+REFINEMENT (@refinements@, e.g. wanda+dsnot) refines its mask.")
    refine: str | None = Field(
        None, description="Mask refinement after the method: dsnot (prune-and-grow without training).")
    sparsity: Annotated[float | None, within("sparsity", 0, 1)] = Field(
        None, description="Target global sparsity S in [0, 1).")
    nm: str | None = Field(None, description="N:M pattern instead of a sparsity, e.g. 2:4.")
    group: str = Field("row", description="Magnitude and RIA comparison group: row | matrix (RIA's reference "
                       "code default).")
    sequential: bool = Field(True, description="Wanda, RIA: calibrate each block on the outputs of the already-"
                             "pruned blocks, whatever the allocation (off: on the dense model, sharing OWL's or "
                             "DLP's pass). SparseGPT, whose blocks always see the pruned ones: prune q,k,v → o → "
                             "gate,up → down in order (off: one pass per block).")
    blocksize: Positive = Field(128, description="SparseGPT: columns per lazy-update block.")
    percdamp: Annotated[float, within("percdamp", 0, 1, low_open=True)] = Field(
        0.01, description="SparseGPT: Hessian damping as a fraction of its mean diagonal.")
    ria_a: Annotated[float, within("RIA's a", 0)] = Field(
        0.5, description="RIA: exponent a of the input-feature norm ‖X_j‖^a.")
    ria_permute: bool = Field(False, description="RIA with N:M: permute input channels so that the N:M groups "
                              "keep more importance (the mask is N:M in the permuted order).")
    dsnot_cycles: Positive = Field(50, description="DSnoT: most prune-and-grow swaps per row.")
    dsnot_threshold: Annotated[float, within("DSnoT's threshold", 0)] = Field(
        0.1, description="DSnoT: rows whose expected reconstruction error is below this stop early.")
    dsnot_skip: Annotated[str, one_of("dsnot_skip", ("mlp", "none"))] = Field(
        "mlp", description="DSnoT: mlp = leave Linears whose name contains 'mlp' unrefined (the reference code's "
        "default), none = refine every Linear.")

    @model_validator(mode="before")
    @classmethod
    def _method_plus_refinement(cls, data: Any) -> Any:
        """``method: wanda+dsnot`` is short for ``method: wanda, refine: dsnot``."""
        if isinstance(data, dict) and isinstance(data.get("method"), str) and "+" in data["method"]:
            method, _, refine = data["method"].partition("+")
            if data.get("refine") not in (None, refine):
                raise ValueError(f"method {data['method']!r} and refine {data['refine']!r} disagree")
            data = {**data, "method": method, "refine": refine}
        return data

    @field_validator("nm")
    @classmethod
    def _nm(cls, v: str | None) -> str | None:
        if v is not None:
            parse_nm(v)
        return v

    @field_validator("refine")
    @classmethod
    def _refine(cls, v: str | None) -> str | None:
        if v is not None and v not in REFINEMENTS:
            raise ValueError(f"unknown refinement {v!r}; choose one of {', '.join(REFINEMENTS)}")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in ("row", "matrix"):
            raise ValueError(f"comparison group must be row or matrix, got {v!r}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> UnstructuredOptions:
        if self.method == "none":  # a quantize-only run: nothing to prune, every target 0
            if self.sparsity or self.nm or self.refine or self.allocation != "uniform":
                raise ValueError("method none prunes nothing: it takes no sparsity, N:M, refinement or allocation")
            if not self.quantize:
                raise ValueError("method none prunes nothing: give --quantize (or evaluate the dense model)")
            self.sparsity = 0.0
        if (self.sparsity is None) == (self.nm is None):
            raise ValueError("give exactly one of sparsity (--sparsity) or an N:M pattern (--nm)")
        if self.nm is not None and self.allocation != "uniform":
            raise ValueError("an N:M pattern fixes the sparsity of every layer; it cannot take an allocation")
        self.check_knobs(self.sparsity)
        stray = changed(self, knob_names(METHODS) - set(METHODS[self.method].options))
        if stray:
            raise ValueError(f"{stray[0]} is not an option of {self.method}")
        refinement = REFINEMENTS[self.refine].options if self.refine else ()
        stray = changed(self, knob_names(REFINEMENTS) - set(refinement))
        if stray:
            raise ValueError(f"{stray[0]} is an option of the {stray[0].split('_')[0]} refinement: add "
                             f"+{stray[0].split('_')[0]} to the method")
        if self.refine and self.nm:
            raise ValueError(f"{self.refine} refines unstructured masks; its swaps would break an N:M pattern")
        if self.ria_permute and not self.nm:
            raise ValueError("ria_permute permutes channels for an N:M pattern: give --nm")
        if self.group == "matrix" and not METHODS[self.method].takes_group:
            takers = " and ".join(m for m, entry in METHODS.items() if entry.takes_group)
            raise ValueError(f"the per-matrix comparison group is for {takers}; {self.method} prunes per row")
        return self

    @property
    def kind(self) -> str:
        return "unstructured"

    @property
    def nm_tuple(self) -> tuple[int, int] | None:
        return parse_nm(self.nm) if self.nm else None

    @property
    def label(self) -> str:
        """The method as one word: ``wanda`` or ``wanda+dsnot``."""
        return f"{self.method}+{self.refine}" if self.refine else self.method

    def method_options(self) -> dict[str, Any]:
        """The options the method's kernel takes, by name (with the refinement and its options, if any)."""
        opts = {k: getattr(self, k) for k in METHODS[self.method].options}
        if self.refine:
            opts["refine"] = {"name": self.refine, **{k: getattr(self, k) for k in REFINEMENTS[self.refine].options}}
        return opts

    @property
    def needs_calibration(self) -> bool:
        """Whether the method, its refinement or its allocation reads calibration data."""
        allocation = None if self.nm else ALLOCATIONS[self.allocation_kind]
        return (METHODS[self.method].calibrated or self.refine is not None or self.quant_calibrated
                or (allocation is not None and allocation.calibrated))

    @property
    def comparison_group(self) -> str | None:
        """The group weights compete in: row or matrix where the method takes one, row otherwise; None for N:M
        (the pattern decides)."""
        if self.nm:
            return None
        return self.group if METHODS[self.method].takes_group else "row"

    def allocation_options(self) -> dict[str, Any]:
        """The allocation's own knobs, by name (the manifest's record of them)."""
        return {k: getattr(self, k) for k in ALLOCATIONS[self.allocation_kind].options}


class StructuredOptions(QuantizeOptions):
    """One layer-removal rule and how many blocks: a count, a matched fraction, or indices; then optionally
    quantization of the blocks that remain."""

    method: Annotated[str, registered(REMOVALS)] = Field(description="@removal@.")
    remove_layers: OptionalPositive = Field(None, description="Number of blocks to remove.")
    match_sparsity: Annotated[float | None, within("match-sparsity", 0, 1, low_open=True)] = Field(
        None, description="Remove the block count whose parameter fraction is closest to this.")
    layers: list[int] | None = Field(None, description="Method 'layers': block indices, e.g. 3,7,12.")
    keep_last: bool = Field(False, description="Method 'reverse': never remove the last block.")
    laco_threshold: Annotated[float, within("LaCo threshold", 0, 1, low_open=True, high_closed=True)] = Field(
        0.9, description="LaCo: minimum cosine similarity to keep a merge.")
    laco_span: Positive = Field(1, description="LaCo: following blocks folded into a block per merge.")
    shortgpt_last: Annotated[str, one_of("shortgpt_last rule", ("never", "normed"))] = Field(
        "never", description="ShortGPT: never (the last block is never a candidate, as LPHIS scores it) | normed "
        "(score it against the final normed hidden state, as ShortGPT's own code).")

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one block index")
            if min(v) < 0:
                raise ValueError(f"block indices must be ≥ 0, got {min(v)}")
            if len(set(v)) != len(v):
                raise ValueError(f"block indices repeat: {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> StructuredOptions:
        given = sum(x is not None for x in (self.remove_layers, self.match_sparsity, self.layers))
        if self.method == "layers":
            if self.layers is None or given != 1:
                raise ValueError("method 'layers' takes --layers (block indices) and nothing else")
        elif self.layers is not None:
            raise ValueError(f"--layers is for method 'layers', not {self.method!r}")
        elif given != 1:
            raise ValueError("give exactly one of --remove-layers N or --match-sparsity S")
        stray = changed(self, knob_names(REMOVALS) - set(REMOVALS[self.method].options))
        if stray:
            raise ValueError(f"{stray[0]} is not an option of {self.method}")
        return self

    @property
    def kind(self) -> str:
        return "structured"

    @property
    def needs_calibration(self) -> bool:
        return REMOVALS[self.method].calibrated


class PruneSpec(UnstructuredOptions, SaveFormat, ModelInput, Device, Output):
    """One unstructured pruning run."""

    calibration: Calibration = Calibration()


class StructuredSpec(StructuredOptions, SaveFormat, ModelInput, Device, Output):
    """One layer-removal run."""

    calibration: Calibration = Calibration()


class AllocationSpec(AllocationOptions, ModelInput, Device):
    """The per-block sparsities an allocation gives a model (``prunescale allocation``)."""

    sparsity: Annotated[float, within("sparsity", 0, 1)] = Field(description="Target global sparsity S in [0, 1).")
    calibration: Calibration = Calibration()

    @model_validator(mode="after")
    def _cross(self) -> AllocationSpec:
        self.check_knobs(self.sparsity)
        return self


