"""A study: one YAML that names the model, the pruned variants and how to evaluate them.

A variant is a prune spec minus its model, data and output: :class:`~prunescale.config.UnstructuredOptions`
or :class:`~prunescale.config.StructuredOptions` with a name (or ``dense``), so a study accepts exactly
the options ``prunescale prune`` does, with the same defaults and checks. ``calibration:`` is
:class:`~prunescale.config.Calibration` and ``eval:`` is :class:`~prunescale.config.EvalOptions` plus the
benchmarks. Everything, the grid's variants included, is validated when the YAML is read; an error names
its YAML path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, Discriminator, Tag, ValidationError, field_validator, model_validator

from prunescale.config import (
    Calibration,
    EvalOptions,
    QuantizeOptions,
    Strict,
    StructuredOptions,
    UnstructuredOptions,
    one_line,
)
from prunescale.config.fields import DType, OptionalPositive
from prunescale.config.quantization import DEFAULT_GROUP
from prunescale.errors import PrunescaleError
from prunescale.registry import METHODS, REMOVALS

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _safe_name(v: str) -> str:
    """Names become folder names: letters, digits, '.', '_', '-' only, so no spec can escape its folder."""
    if not SAFE_NAME.match(v) or ".." in v:
        raise ValueError(f"{v!r} is not a safe name (letters, digits, '.', '_', '-'; no '..')")
    return v


SafeName = Annotated[str, AfterValidator(_safe_name)]


class DenseVariant(QuantizeOptions):
    """The dense model; with ``quantize`` set, the dense model quantized (kind ``quantized``): ``dense`` always
    names the one unquantized reference."""

    name: SafeName
    method: Literal["dense"] = "dense"

    @property
    def kind(self) -> str:
        return "quantized" if self.quantize else "dense"


class UnstructuredVariant(UnstructuredOptions):
    name: SafeName


class StructuredVariant(StructuredOptions):
    name: SafeName


VARIANT_KINDS = ("dense", "unstructured", "structured")  # the union's tags (a quantized dense variant is tagged dense)


def _variant_kind(v: object) -> str:
    method = v.get("method", "dense") if isinstance(v, dict) else getattr(v, "method", "dense")
    return "dense" if method == "dense" else "structured" if method in REMOVALS else "unstructured"


Variant = Annotated[
    Annotated[DenseVariant, Tag("dense")]
    | Annotated[UnstructuredVariant, Tag("unstructured")]
    | Annotated[StructuredVariant, Tag("structured")],
    Discriminator(_variant_kind),
]


class UnstructuredGrid(Strict):
    methods: list[str]
    allocations: list[str] = ["uniform"]
    sparsities: list[float]
    sequential: bool = True


class StructuredGrid(Strict):
    methods: list[str]
    remove_layers: list[int] = []
    match_sparsity: list[float] = []


class QuantizeChoice(Strict):
    """One entry of the grid's ``quantize:`` axis (``none`` is the unquantized entry)."""

    method: str
    bits: int = 4
    group_size: int = DEFAULT_GROUP
    act_order: bool = False

    def options(self) -> dict:
        """As the variant fields (``quantize``, ``bits``, …) a variant with this quantization has."""
        return {"quantize": self.method, **self.model_dump(exclude={"method"})}


class Grid(Strict):
    unstructured: UnstructuredGrid | None = None
    structured: StructuredGrid | None = None
    # crossed with every unquantized variant (dense included); a list without "none" drops the unquantized ones
    quantize: list[Literal["none"] | QuantizeChoice] = []


class EvalSettings(EvalOptions):
    """A study's ``eval:`` section: the run options plus the benchmarks."""

    benchmarks: list[str]

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one benchmark")
        return v

    def options(self) -> dict:
        """The eval options of one (variant, benchmark) run."""
        return self.model_dump(exclude={"benchmarks"})


class StudySpec(Strict):
    name: SafeName
    model: str
    dtype: DType = "auto"
    device: str = "cpu"
    calibration: Calibration = Calibration()
    threads: OptionalPositive = None  # CPU threads per variant under every executor (None: the cores torch sees)
    tuning_split: str = "validation"  # where any tuned knob was chosen; reported, never the eval split
    include_dense: bool = True
    variants: list[Variant] = []
    grid: Grid | None = None
    eval: EvalSettings

    @model_validator(mode="after")
    def _cross(self) -> StudySpec:
        if self.tuning_split == self.eval.split:
            raise ValueError(f"tuning_split and eval.split are both {self.eval.split!r}: never tune on reported items")
        reported = {_path(b[len("jsonl:"):]) for b in self.eval.benchmarks if b.startswith("jsonl:")}
        readers = {"calibration.source": self.calibration.source,
                   **{f"{v.name}.layerif_data": getattr(v, "layerif_data", None) for v in self.variants}}
        for where, source in readers.items():
            path = _source_file(source)
            if path is not None and path in reported and not _names_splits(path):
                raise ValueError(f"{where} reads {path}, which this study also reports on as a benchmark, and its rows "
                                 "name no split: its test items would calibrate the model; give every row a 'split' "
                                 "field (train, validation or test)")
        return self

    def expand(self) -> list[DenseVariant | UnstructuredVariant | StructuredVariant]:
        """The full list of variants: dense (unless excluded), the explicit ones, then the grid's."""
        out: list = []
        if self.include_dense and not any(v.kind == "dense" for v in self.variants):
            out.append(DenseVariant(name="dense"))
        out += self.variants
        g = self.grid
        if g and g.unstructured:
            for m in g.unstructured.methods:  # `sequential` goes to the methods that read it
                base = m.split("+", 1)[0]
                reads = METHODS[base].options if base in METHODS else ()
                seq = {"sequential": g.unstructured.sequential} if "sequential" in reads else {}
                for a in g.unstructured.allocations:
                    for s in g.unstructured.sparsities:
                        out.append(UnstructuredVariant(name=f"{m.replace('+', '-')}-{round(100 * s)}-{a}", method=m,
                                                       sparsity=s,
                                                       allocation=a, **seq))
        if g and g.structured:
            for m in g.structured.methods:
                for n in g.structured.remove_layers:
                    out.append(StructuredVariant(name=f"{m}-remove{n}", method=m, remove_layers=n))
                for s in g.structured.match_sparsity:
                    out.append(StructuredVariant(name=f"{m}-match{round(100 * s)}", method=m, match_sparsity=s))
        return _crossed(out, g.quantize) if g and g.quantize else out


QUANT_FIELDS = tuple(QuantizeOptions.model_fields)


def _crossed(variants: list, axis: list) -> list:
    """Every unquantized variant once per entry of the ``quantize:`` axis (named ``NAME-LABEL``); variants
    that set their own quantization are kept as they are."""
    out: list = []
    for v in variants:
        if v.quantize:
            out.append(v)
            continue
        for choice in axis:
            if choice == "none":
                out.append(v)
                continue
            fields = v.model_dump(exclude_unset=True) | choice.options()
            q = type(v)(**fields)
            out.append(type(v)(**(fields | {"name": f"{v.name}-{q.quant_label}"})))
    return out


def counterparts(variants: list) -> dict[str, str]:
    """Quantized variant → the variant that is the same in everything but quantization (the one factor a
    quantization comparison may change); variants without one are absent."""
    def base(v) -> str:
        return json.dumps(v.model_dump(exclude={"name", *QUANT_FIELDS}), sort_keys=True, default=str)

    plain = {base(v): v.name for v in variants if not v.quantize}
    return {v.name: plain[base(v)] for v in variants if v.quantize and base(v) in plain}


def _path(text: str) -> Path:
    return Path(text).expanduser().resolve()


def _source_file(source: str | None) -> Path | None:
    """The local file a calibration or task-data source reads, if any (``jsonl:F``, ``text:F``, ``c4:F``,
    ``prompts:jsonl:F``, ``traces:jsonl:F``)."""
    if not source:
        return None
    kind, _, rest = source.partition(":")
    if kind in ("prompts", "traces"):
        kind, _, rest = rest.partition(":")
    return _path(rest) if rest and kind in ("jsonl", "text", "c4", "wikitext2") else None


def _names_splits(path: Path) -> bool:
    """Whether a JSONL file's rows carry a ``split`` field (then calibration and evaluation read disjoint rows)."""
    try:
        with path.open(encoding="utf-8") as fh:
            return any("split" in json.loads(line) for line in fh if line.strip())
    except (OSError, ValueError):
        return False


def expand(spec: StudySpec) -> list[DenseVariant | UnstructuredVariant | StructuredVariant]:
    """The study's variants (checked: at least one, names unique)."""
    try:
        out = spec.expand()
    except ValidationError as exc:
        raise PrunescaleError(one_line(exc, "grid: ")) from None
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
        spec = StudySpec(**raw)
    except ValidationError as exc:
        raise PrunescaleError(one_line(exc, f"{path}: ", VARIANT_KINDS)) from None
    try:
        expand(spec)  # the grid's variants are checked now, not when the study reaches them
    except PrunescaleError as exc:
        raise PrunescaleError(f"{path}: {exc}") from None
    return spec

