"""Validated specifications (pydantic, ``extra="forbid"``): what the CLI, the API and study YAML accept.

Cross-field rules live here, once, so every entry point rejects the same bad inputs with the same
messages. Constraints shared by several specs are reusable annotated types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from prunescale.errors import PrunescaleError

UNSTRUCTURED = ("magnitude", "wanda", "sparsegpt")
STRUCTURED = ("shortgpt", "angular", "reverse", "random", "layers", "laco")
ALLOCATIONS = ("uniform", "owl", "alpha", "layerif", "file")
DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` → (2, 4): keep N of every M consecutive input weights; needs 0 < N < M."""
    try:
        n_str, m_str = text.split(":")
        n, m = int(n_str), int(m_str)
    except ValueError:
        raise ValueError(f"N:M must look like 2:4, got {text!r}") from None
    if not 0 < n < m:
        raise ValueError(f"N:M needs 0 < N < M, got {text!r}")
    return n, m


def _at_least(low: int) -> AfterValidator:
    def check(v: int | None) -> int | None:
        if v is not None and v < low:
            raise ValueError(f"must be ≥ {low}, got {v}")
        return v

    return AfterValidator(check)


def _dtype(v: str) -> str:
    if v not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {v!r}; choose one of {', '.join(DTYPE_NAMES)}")
    return v


def _method(v: str) -> str:
    if v not in UNSTRUCTURED + STRUCTURED:
        raise ValueError(f"unknown method {v!r}; choose one of {', '.join(UNSTRUCTURED + STRUCTURED)}")
    return v


Positive = Annotated[int, _at_least(1)]
NonNegative = Annotated[int, _at_least(0)]
OptionalPositive = Annotated[int | None, _at_least(1)]
DType = Annotated[str, AfterValidator(_dtype)]
Method = Annotated[str, AfterValidator(_method)]


class PruneSpec(BaseModel):
    """One unstructured pruning run."""

    model_config = ConfigDict(extra="forbid")

    model: str
    method: Method
    sparsity: float | None = None
    nm: str | None = None
    allocation: str = "uniform"
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    epsilon: float = 0.3
    layerif_data: str | None = None  # default: the model's embedded source (train vs held-out split)
    layerif_examples: int = 32
    group: str = "row"
    calib: str | None = None  # default: the model's embedded default source
    nsamples: Positive = 128
    seqlen: Annotated[int | None, _at_least(2)] = None  # default: 128 for the tiny reasoner's source, else 512
    seed: int = 0
    device: str = "cpu"
    dtype: DType = "auto"
    sequential: bool = True
    blocksize: Positive = 128
    percdamp: float = 0.01
    trust_remote_code: bool = False
    out: Path
    overwrite: bool = False

    @field_validator("method")
    @classmethod
    def _unstructured(cls, v: str) -> str:
        if v not in UNSTRUCTURED:
            raise ValueError(f"{v} removes whole blocks: use --remove-layers or --match-sparsity")
        return v

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v < 1:
            raise ValueError(f"sparsity must be in [0, 1), got {v}")
        return v

    @field_validator("nm")
    @classmethod
    def _nm(cls, v: str | None) -> str | None:
        if v is not None:
            parse_nm(v)
        return v

    @field_validator("allocation")
    @classmethod
    def _allocation(cls, v: str) -> str:
        kind, _, path = v.partition(":")
        if kind not in ALLOCATIONS or (kind == "file") != bool(path):
            raise ValueError(f"unknown allocation {v!r}; choose one of uniform, owl, alpha, layerif, file:PATH")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in ("row", "matrix"):
            raise ValueError(f"comparison group must be row or matrix, got {v!r}")
        return v

    @field_validator("percdamp")
    @classmethod
    def _percdamp(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"percdamp must be in (0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> PruneSpec:
        if (self.sparsity is None) == (self.nm is None):
            raise ValueError("give exactly one of sparsity (--sparsity) or an N:M pattern (--nm)")
        if self.nm is not None and self.allocation != "uniform":
            raise ValueError("an N:M pattern fixes the sparsity of every layer; it cannot take an allocation")
        if self.allocation == "owl" and self.sparsity is not None:
            if not 0 < self.owl_lambda < self.sparsity or self.sparsity + self.owl_lambda >= 1:
                raise ValueError(f"OWL needs 0 < λ < S and S + λ < 1 (S={self.sparsity}, λ={self.owl_lambda})")
            if self.owl_m <= 0:
                raise ValueError(f"OWL's outlier threshold M must be > 0, got {self.owl_m}")
        if not 0 < self.epsilon < 1:
            raise ValueError(f"ε must be in (0, 1), got {self.epsilon}")
        if self.group == "matrix" and self.method != "magnitude":
            raise ValueError(f"the per-matrix comparison group is for magnitude only; {self.method} prunes per row")
        return self

    @property
    def nm_tuple(self) -> tuple[int, int] | None:
        return parse_nm(self.nm) if self.nm else None


class StructuredSpec(BaseModel):
    """One layer-removal run: a rule and how many blocks (a count, a matched fraction, or indices)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    method: Method
    remove_layers: OptionalPositive = None
    match_sparsity: float | None = None
    layers: list[int] | None = None
    keep_last: bool = False
    laco_threshold: float = 0.9
    laco_span: Positive = 1
    calib: str | None = None
    nsamples: Positive = 32
    seqlen: Annotated[int | None, _at_least(2)] = None
    seed: int = 0
    device: str = "cpu"
    dtype: DType = "auto"
    trust_remote_code: bool = False
    out: Path
    overwrite: bool = False

    @field_validator("method")
    @classmethod
    def _structured(cls, v: str) -> str:
        if v not in STRUCTURED:
            raise ValueError(f"{v} is unstructured: use --sparsity or --nm, not layer-removal options")
        return v

    @field_validator("match_sparsity")
    @classmethod
    def _match(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v < 1:
            raise ValueError(f"match-sparsity must be in (0, 1), got {v}")
        return v

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

    @field_validator("laco_threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"LaCo threshold must be in (0, 1], got {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> StructuredSpec:
        given = sum(x is not None for x in (self.remove_layers, self.match_sparsity, self.layers))
        if self.method == "layers":
            if self.layers is None or given != 1:
                raise ValueError("method 'layers' takes --layers (block indices) and nothing else")
        elif self.layers is not None:
            raise ValueError(f"--layers is for method 'layers', not {self.method!r}")
        elif given != 1:
            raise ValueError("give exactly one of --remove-layers N or --match-sparsity S")
        return self


class EvalOptions(BaseModel):
    """How to evaluate (shared by one eval run and a study's ``eval:`` section)."""

    model_config = ConfigDict(extra="forbid")

    split: str = "test"
    limit: OptionalPositive = None
    budgets: list[int]
    wait: NonNegative = 0
    min_budget: NonNegative = 0
    samples: Positive = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: NonNegative = 0  # 0: off
    min_p: float = 0.0  # 0: off
    seeds: list[int] = [0]
    answer_budget: Positive = 64
    engine: str = "hf"
    tensor_parallel_size: Positive = 1
    batch_size: Positive = 32
    dtype: DType = "auto"
    device: str = "cpu"
    think_open: str | None = None  # override the model's thinking markers (both or neither)
    think_close: str | None = None

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one budget")
        if any(b < 0 for b in v):
            raise ValueError(f"budgets must be non-negative integers, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"budgets repeat: {v}")
        return sorted(v)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"temperature must be ≥ 0, got {v}")
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {v}")
        return v

    @field_validator("min_p")
    @classmethod
    def _min_p(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError(f"min-p must be in [0, 1), got {v}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct and at least one, got {v}")
        return v

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in ("hf", "vllm"):
            raise ValueError(f"unknown engine {v!r}; choose hf or vllm")
        return v

    @model_validator(mode="after")
    def _greedy(self) -> EvalOptions:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError("greedy decoding (temperature 0) gives identical samples: use --temperature > 0 "
                             "for --samples > 1")
        if (self.think_open is None) != (self.think_close is None):
            raise ValueError("give both --think-open and --think-close, or neither")
        return self


class EvalSpec(EvalOptions):
    """One evaluation: a model on a benchmark over budgets × seeds × samples."""

    model: str
    benchmark: str
    label: str | None = None
    grade_timeout: float = 5.0
    trust_remote_code: bool = False
    out: Path
    overwrite: bool = False


def validated(cls: type[BaseModel], **fields: object) -> BaseModel:
    """Build a spec, turning pydantic's multi-line report into one user-facing line."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise PrunescaleError(f"{where}: {msg}" if where else msg) from None
