"""A study: one YAML that names the model, the pruned variants and how to evaluate them.

Validated with pydantic (``extra="forbid"`` everywhere) so a typo is an error that names its YAML path,
never a silently ignored key. Variants can be listed one by one and/or generated from a grid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from prunescale.config import STRUCTURED, UNSTRUCTURED, EvalOptions
from prunescale.errors import PrunescaleError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _safe_name(v: str) -> str:
    """Names become folder names: letters, digits, '.', '_', '-' only, so no spec can escape its folder."""
    if not SAFE_NAME.match(v) or ".." in v:
        raise ValueError(f"{v!r} is not a safe name (letters, digits, '.', '_', '-'; no '..')")
    return v


SafeName = Annotated[str, AfterValidator(_safe_name)]


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = None
    nsamples: int = 64
    seqlen: int | None = None
    seed: int = 0


class Variant(BaseModel):
    """One model variant: ``dense``, an unstructured method, or a layer-removal rule."""

    model_config = ConfigDict(extra="forbid")
    name: SafeName
    method: str = "dense"
    sparsity: float | None = None
    nm: str | None = None
    allocation: str = "uniform"
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    epsilon: float = 0.3
    sequential: bool = True  # Wanda: False = dense-model statistics (what OWL's single pass gives)
    remove_layers: int | None = None
    match_sparsity: float | None = None
    layers: list[int] | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v != "dense" and v not in UNSTRUCTURED + STRUCTURED:
            raise ValueError(f"unknown method {v!r}; choose dense, {', '.join(UNSTRUCTURED + STRUCTURED)}")
        return v

    @property
    def kind(self) -> str:
        return "dense" if self.method == "dense" else ("structured" if self.method in STRUCTURED else "unstructured")


class UnstructuredGrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    methods: list[str]
    allocations: list[str] = ["uniform"]
    sparsities: list[float]
    sequential: bool = True


class StructuredGrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    methods: list[str]
    remove_layers: list[int] = []
    match_sparsity: list[float] = []


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unstructured: UnstructuredGrid | None = None
    structured: StructuredGrid | None = None


class EvalSettings(EvalOptions):
    """A study's ``eval:`` section: the run options plus the benchmarks (budgets strictly increasing)."""

    benchmarks: list[str]

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one budget")
        if any(b < 0 for b in v) or any(b >= c for b, c in zip(v, v[1:])):
            raise ValueError(f"budgets must be non-negative and strictly increasing, got {v}")
        return v

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one benchmark")
        return v


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: SafeName
    model: str
    dtype: str = "auto"
    device: str = "cpu"
    calibration: Calibration = Calibration()
    tuning_split: str = "validation"  # where any tuned knob was chosen; reported, never the eval split
    include_dense: bool = True
    variants: list[Variant] = []
    grid: Grid | None = None
    eval: EvalSettings

    @model_validator(mode="after")
    def _cross(self) -> StudySpec:
        if self.tuning_split == self.eval.split:
            raise ValueError(f"tuning_split and eval.split are both {self.eval.split!r}: never tune on reported items")
        return self


def _variant_name(method: str, **kw: object) -> str:
    parts = [method] + [f"{k}{v}" for k, v in kw.items() if v is not None]
    return "-".join(str(p).replace("0.", "").replace(".", "") for p in parts)


def expand(spec: StudySpec) -> list[Variant]:
    """The full list of variants: dense (unless excluded), the explicit ones, then the grid's."""
    out: list[Variant] = []
    if spec.include_dense and not any(v.method == "dense" for v in spec.variants):
        out.append(Variant(name="dense"))
    out += spec.variants
    g = spec.grid
    if g and g.unstructured:
        for m in g.unstructured.methods:
            for a in g.unstructured.allocations:
                for s in g.unstructured.sparsities:
                    out.append(Variant(name=f"{m}-{round(100 * s)}-{a}", method=m, sparsity=s, allocation=a,
                                       sequential=g.unstructured.sequential))
    if g and g.structured:
        for m in g.structured.methods:
            for n in g.structured.remove_layers:
                out.append(Variant(name=f"{m}-remove{n}", method=m, remove_layers=n))
            for s in g.structured.match_sparsity:
                out.append(Variant(name=f"{m}-match{round(100 * s)}", method=m, match_sparsity=s))
    if not out:
        raise PrunescaleError("the study has no variants (empty grid and no variants listed)")
    names = [v.name for v in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PrunescaleError(f"duplicate variant names: {', '.join(dupes)}")
    return out


def load_spec(path: Path) -> StudySpec:
    """Read and validate a study YAML; errors name the YAML path (e.g. ``eval.budgets``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrunescaleError(f"study spec not found: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise PrunescaleError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise PrunescaleError(f"{path}: a study spec is a YAML mapping")
    try:
        return StudySpec(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise PrunescaleError(f"{path}: {where}: {msg}") from None
